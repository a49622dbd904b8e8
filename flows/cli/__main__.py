"""``python -m flows.cli``: the ``twin`` command."""

import sys

from flows.cli.main import main

sys.exit(main())
