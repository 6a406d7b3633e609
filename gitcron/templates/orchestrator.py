"""Entry point: `python orchestrator.py --help`; the same as the `gitcron` command."""
from gitcron.__main__ import main

raise SystemExit(main())
