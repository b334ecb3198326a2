"""The vector index: FAISS over the catalogue's embeddings (``vectors``), its rebuild in the
background, and the attribute table cached beside it."""
