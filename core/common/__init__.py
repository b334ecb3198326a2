"""What every room uses: errors, the shared records (``types``), default folders, private files, the
operator's name, environment settings, and reading images (photos and sketches alike)."""
