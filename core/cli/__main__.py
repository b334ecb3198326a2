"""``python -m core.cli``."""

import sys

from core.cli.commands import main

sys.exit(main())
