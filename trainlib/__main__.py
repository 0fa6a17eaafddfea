"""python -m trainlib: see trainlib/cli.py."""
import sys

from .cli import main

sys.exit(main())
