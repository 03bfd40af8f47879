"""``python -m raftkit``: the same as the ``raftkit`` command."""

import sys

from raftkit.cli import main

sys.exit(main())
