"""``python -m harness``: the kit's command line (see harness.cli)."""

from harness.cli import main

raise SystemExit(main())
