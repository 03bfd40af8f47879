import sys

from raftkit.cli import main

sys.exit(main())
