"""`python -m util.toolchain [names]`: compile models (the server runs this in a child process)."""
import sys

from util.toolchain.cli import main

sys.exit(main())
