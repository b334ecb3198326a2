"""Embedding a gallery on a Ray cluster into Parquet shards (``sketchsearch-cluster``). Server-side
only: the desktop application never imports this room."""
