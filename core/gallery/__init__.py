"""The gallery: finding photos in folders, checking their files, importing them (decoded, embedded,
catalogued, indexed), ingesting embedding shards, attribute sheets, and the deeper file checks of
``verify``."""
