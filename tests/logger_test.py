"""gitcron.logger: loguru without asyncio at start-up, and with nothing else changed.

Each case runs in a fresh interpreter: what is imported is a property of a process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

from conftest import REPO


def _python(code: str, **env: str) -> dict[str, object]:
    """Run `code` in a new interpreter at the repository; it prints one JSON object."""
    environment = {k: v for k, v in os.environ.items() if k != "LOGURU_AUTOINIT"}
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          env=environment, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_loguru_starts_without_asyncio_or_a_default_handler() -> None:
    seen = _python("""
        import json, os, sys
        from gitcron.logger import logger
        print(json.dumps({"asyncio": "asyncio" in sys.modules,
                          "handlers": len(logger._core.handlers),
                          "autoinit": os.environ.get("LOGURU_AUTOINIT")}))
    """)
    assert seen == {"asyncio": False, "handlers": 0, "autoinit": None}


def test_a_users_loguru_autoinit_is_put_back_for_the_modules() -> None:
    seen = _python("""
        import json, os
        from gitcron.logger import logger
        print(json.dumps({"autoinit": os.environ.get("LOGURU_AUTOINIT")}))
    """, LOGURU_AUTOINIT="yes")
    assert seen == {"autoinit": "yes"}


def test_the_stand_in_offers_every_name_loguru_takes_from_its_own_module() -> None:
    """Read from loguru's source, so a newer loguru that wants more fails here, not in a run."""
    seen = _python("""
        import json, pathlib, re, sys
        from gitcron.logger import logger
        import loguru
        wanted = set()
        for source in pathlib.Path(loguru.__path__[0]).glob("*.py"):
            text = source.read_text()
            for names in re.findall(r"from \\._asyncio_loop import ([\\w, ]+)", text):
                wanted.update(n.strip() for n in names.split(","))
            wanted.update(re.findall(r"_asyncio_loop\\.(\\w+)", text))
        ours = sys.modules["loguru._asyncio_loop"]
        print(json.dumps({"wanted": sorted(wanted),
                          "missing": sorted(n for n in wanted if not callable(getattr(ours, n, None)))}))
    """)
    assert {"get_running_loop", "get_task_loop"} <= set(seen["wanted"])
    assert seen["missing"] == []


def test_a_coroutine_sink_still_works() -> None:
    seen = _python("""
        import asyncio, json
        from gitcron.logger import logger
        got = []
        async def sink(message):
            got.append(message.record["message"])
        async def main():
            logger.add(sink, format="{message}")
            logger.info("through the coroutine sink")
            await logger.complete()
        asyncio.run(main())
        print(json.dumps({"got": got}))
    """)
    assert seen == {"got": ["through the coroutine sink"]}


def test_a_process_that_imported_loguru_first_keeps_it_as_it_was() -> None:
    seen = _python("""
        import json, sys
        from loguru import logger as theirs
        import loguru._asyncio_loop as before
        from gitcron.logger import logger
        print(json.dumps({"same": logger is theirs,
                          "module kept": sys.modules["loguru._asyncio_loop"] is before,
                          "handlers": len(logger._core.handlers)}))
    """)
    assert seen == {"same": True, "module kept": True, "handlers": 1}


def test_the_library_folders_are_only_iterated_so_a_lazy_list_serves() -> None:
    seen = _python("""
        import json, re
        from gitcron.logger import logger
        from loguru import _better_exceptions
        text = open(_better_exceptions.__file__).read()
        uses = re.findall(r"[^\\n]*_lib_dirs\\b[^\\n]*", text)
        print(json.dumps({"uses": [u.strip() for u in uses]}))
    """)
    other = [use for use in seen["uses"] if not (
        use.startswith(("self._lib_dirs = self._get_lib_dirs()", "def _get_lib_dirs"))
        or re.search(r"\bfor \w+ in self\._lib_dirs\b", use))]
    assert other == [], "loguru uses its library folders in a new way"


def test_tracebacks_still_tell_library_frames_from_the_users() -> None:
    seen = _python("""
        import json, os
        from gitcron.logger import logger
        from loguru._better_exceptions import ExceptionFormatter
        lines = []
        logger.add(lines.append, format="{message}", backtrace=True, diagnose=False)
        try:
            os.stat("/no/such/file")
        except OSError:
            logger.exception("boom")
        formatter = ExceptionFormatter()
        print(json.dumps({"stdlib mine": formatter._is_file_mine(os.__file__),
                          "ours mine": formatter._is_file_mine("gitcron/run.py"),
                          "traceback": "FileNotFoundError" in "".join(lines)}))
    """)
    assert seen == {"stdlib mine": False, "ours mine": True, "traceback": True}
