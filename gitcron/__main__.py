"""`python -m gitcron`, the `gitcron` command and orchestrator.py all start here."""

from __future__ import annotations

import gc
import signal
from collections.abc import Sequence

from gitcron.codes import EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    # Start-up makes many objects and frees few: collecting cycles among them costs a
    # tenth of it. A run turns collection back on once it starts (gitcron/run.py).
    gc.disable()
    # A cancel while the runner is still starting ends it quietly: exit 130. SIGINT is
    # set too: a shell starts a background job with it ignored, and the run must be
    # cancellable however it was started.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        from gitcron.cli import main as cli_main
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
