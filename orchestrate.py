#!/usr/bin/env python3
"""progjar-lab orchestrator: ``python orchestrate.py --help``."""

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main())
