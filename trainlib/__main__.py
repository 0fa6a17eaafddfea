"""python -m trainlib: see trainlib/cli.py."""
import sys

from .cli import main

if __name__ == "__main__":      # worker processes are spawned: importing this module must not run the CLI
    sys.exit(main())
