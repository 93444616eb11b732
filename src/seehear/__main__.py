import sys

from seehear.cli import main

sys.exit(main())
