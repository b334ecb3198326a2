"""The photo catalogue."""
