"""`python -m util.build [names]`: compile models (the server runs this in a child process)."""
import sys

from util.build.cli import main

sys.exit(main())
