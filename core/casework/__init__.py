"""Casework: cases, a record of every search, reviewed candidates, a hash-chained audit log,
replay of recorded searches and the PDF report. Stored in the catalogue's SQLite file, in tables
this room declares (``tables``)."""
