"""Entry point: `python orchestrator.py --help`."""
import signal

# A cancel while the runner is still starting (SIGTERM as SIGINT) ends it quietly: exit 130.
signal.signal(signal.SIGTERM, signal.default_int_handler)
try:
    from pipeline.cli import main
except KeyboardInterrupt:
    raise SystemExit(130) from None
raise SystemExit(main())
