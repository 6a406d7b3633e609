"""Entry point: `python orchestrator.py --help`."""
from pipeline.cli import main

raise SystemExit(main())
