"""`python -m harness` is the `bench` command."""

import sys

from harness.cli.main import main

sys.exit(main())
