"""``python -m app.fileserver``: runs the command line of ``cli.py``."""

import sys

from app.fileserver.cli import main

if __name__ == "__main__":
    sys.exit(main())
