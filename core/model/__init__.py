"""The network shared by training and inference, its preprocessing and its checkpoint format."""
