"""`python -m ysync` is the same as the `ysync` command."""

from ysync.server.cli import main

raise SystemExit(main())
