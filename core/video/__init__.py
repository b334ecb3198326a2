"""Video import: frames sampled from footage, the people in them detected and followed across
frames, and one crop of each person catalogued, with the frame it came from."""
