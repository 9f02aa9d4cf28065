"""``python -m cardioscar`` runs the command line."""

import sys

from cardioscar.cli import main

sys.exit(main())
