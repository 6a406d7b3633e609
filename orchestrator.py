"""Entry point: `python orchestrator.py --help`."""
import gc
import signal

# Start-up makes many objects and frees few: collecting cycles among them costs a
# tenth of it. A run turns collection back on once it starts (gitcron/run.py).
gc.disable()

# A cancel while the runner is still starting ends it quietly: exit 130. SIGINT is
# set too: a shell starts a background job with it ignored, and the run must be
# cancellable however it was started.
for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, signal.default_int_handler)
try:
    from gitcron.cli import main
except KeyboardInterrupt:
    raise SystemExit(130) from None
raise SystemExit(main())
