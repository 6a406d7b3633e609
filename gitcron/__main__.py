"""`python -m gitcron`, the `gitcron` command and orchestrator.py all start here."""

from __future__ import annotations

from collections.abc import Sequence

from gitcron import interrupt
from gitcron.codes import EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    interrupt.catch()  # a cancel while the runner is still starting: exit 130, quietly
    try:
        from gitcron.cli import main as cli_main

        if interrupt.noted() is not None:  # raised where an import could not pass it on
            return EXIT_INTERRUPTED
        return cli_main(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:
        # Python 3.11 wraps what a descriptor's __set_name__ raises while a class is
        # made in a RuntimeError: a cancel noted while starting is a cancel all the same.
        if interrupt.noted() is None:
            raise
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
