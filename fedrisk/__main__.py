"""``python -m fedrisk`` runs the CLI."""

import sys

from fedrisk.cli import main

sys.exit(main())
