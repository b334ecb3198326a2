"""The headless command line, ``sketchsearch <command>`` (``commands``); ``python -m core.cli`` runs
it too."""
