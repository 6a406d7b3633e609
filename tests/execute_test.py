from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import REPO, Project

from gitcron import config as cfg
from gitcron import contract, execute
from gitcron.execute import Cancel, Outcome, RunContext


def context(project: Project, **changes: object) -> RunContext:
    values: dict = dict(
        run_id="20261123_06h00", config_path=project.config_path, log_dir=project.log_dir,
        root=project.root, tz=timezone.utc, last_run_date="2026-11-22T06:00:00+00:00",
        started=datetime(2026, 11, 23, 6, 0, 1, tzinfo=timezone.utc),
    )
    values.update(changes)
    return RunContext(**values)


class Collected:
    """The output sink: every line, in order, and which stream it came on."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.streams: list[str] = []
        self.pieces = 0  # calls with a piece of a long line
        self.on_line: dict[str, object] = {}

    def __call__(self, stream: str, text: str) -> None:
        if not text.endswith("\n"):
            self.pieces += 1
            text += "\n"
        for line in text[:-1].split("\n"):
            self.lines.append(line)
            self.streams.append(stream)
            action = self.on_line.get(line)
            if callable(action):
                action()


def run(project: Project, name: str, code: str, *, timeout: float = 60, output: Collected |
        None = None, env: dict[str, str] | None = None, mode: int | None = None,
        **ctx: object) -> tuple[Outcome, Collected]:
    path = project.module(name, code, mode=mode)
    spec = cfg.module_spec(path.resolve(), project.root, display="config.json", key="k",
                           timeout_seconds=timeout)
    output = output or Collected()
    run_ctx = context(project, **ctx)
    with Cancel() as cancel:
        module_env = contract.module_env(env if env is not None else dict(os.environ), run_ctx, spec)
        outcome = execute.run_module(spec, run_ctx, module_env, output, cancel)
    return outcome, output


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def dies(pid: int) -> bool:
    """Whether a process that was sent SIGKILL gets to be dead. A dying process closes
    its files (which ends our reading) a moment before the kernel marks it dead."""
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


def test_the_module_gets_the_contract_environment(project: Project) -> None:
    outcome, out = run(project, "1.env.py", """
        import os, sys
        for name in sorted(os.environ):
            if name.startswith("PIPELINE_") or name == "FROM_PARENT":
                print(f"{name}={os.environ[name]}")
        print("cwd=" + os.getcwd())
        print("stdin=" + repr(sys.stdin.read()))
    """, env={"FROM_PARENT": "yes", "PATH": os.environ["PATH"]}, dry_run=True)
    assert outcome.exit_code == 0
    assert out.lines == [
        "FROM_PARENT=yes",
        f"PIPELINE_CONFIG={project.config_path}",
        "PIPELINE_DRY_RUN=1",
        "PIPELINE_FORCE=0",
        "PIPELINE_LAST_RUN_DATE=2026-11-22T06:00:00+00:00",
        f"PIPELINE_LOG_DIR={project.log_dir}",
        "PIPELINE_MODULE=1.env",
        "PIPELINE_RUN_DIR=",
        "PIPELINE_RUN_ID=20261123_06h00",
        "PIPELINE_RUN_STARTED=2026-11-23T06:00:01+00:00",
        "PIPELINE_WINDOW_END=2026-11-23T06:00:01+00:00",
        "PIPELINE_WINDOW_START=",
        f"cwd={project.root}",
        "stdin=''",
    ]


def test_lines_reach_the_sink_while_the_module_still_runs(project: Project) -> None:
    """The module waits for a file that the sink creates on seeing its first line."""
    flag = project.root / "seen"
    out = Collected()
    out.on_line["waiting"] = flag.touch
    outcome, _ = run(project, "w.py", f"""
        import os, time
        print("waiting")
        while not os.path.exists({str(flag)!r}):
            time.sleep(0.01)
        print("done")
    """, output=out, timeout=60)
    assert not outcome.timed_out
    assert out.lines == ["waiting", "done"]


def test_megabytes_on_stderr_alone_do_not_deadlock(project: Project) -> None:
    outcome, out = run(project, "e.py", """
        import sys
        for i in range(200_000):
            sys.stderr.write(f"line {i} " + "x" * 40 + "\\n")
    """)
    assert outcome.exit_code == 0
    assert len(out.lines) == 200_000
    assert out.lines[-1].startswith("line 199999 ")
    assert outcome.stderr_tail[-1] == out.lines[-1]
    assert len(outcome.stderr_tail) == execute.STDERR_TAIL_LINES


def test_crlf_a_last_line_without_newline_and_bad_utf8(project: Project) -> None:
    outcome, out = run(project, "b.py", r"""
        import sys
        sys.stdout.buffer.write(b"dos\r\nbad \xff byte\nno newline")
    """)
    assert out.lines == ["dos", "bad \ufffd byte", "no newline"]


def test_add_mask_lines_stay_out_of_the_stderr_tail(project: Project) -> None:
    outcome, _ = run(project, "m.py", """
        import sys
        print("::add-mask::hunter22", file=sys.stderr)
        print("real error", file=sys.stderr)
        sys.exit(4)
    """)
    assert outcome.exit_code == 4
    assert outcome.stderr_tail == ("real error",)
    assert outcome.describe() == "exit code 4"


def test_a_timeout_stops_the_module_and_its_grandchild(project: Project) -> None:
    pid_file = project.root / "grandchild.pid"
    outcome, out = run(project, "t.py", f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(600)
    """, timeout=1)
    assert outcome.timed_out
    assert outcome.exit_code == -signal.SIGTERM
    assert outcome.describe() == "timed out after 1 s"
    assert dies(int(pid_file.read_text()))
    assert not outcome.stray_processes  # our own stop of the group is no leftover


def test_a_module_that_ignores_sigterm_is_killed_after_the_grace(project: Project) -> None:
    outcome, _ = run(project, "i.py", """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring", flush=True)
        time.sleep(600)
    """, timeout=0.5)
    assert outcome.timed_out
    assert outcome.exit_code == -signal.SIGKILL


def test_sigterm_to_the_orchestrator_stops_the_running_module(project: Project) -> None:
    out = Collected()
    out.on_line["ready"] = lambda: os.kill(os.getpid(), signal.SIGTERM)
    outcome, _ = run(project, "s.py", """
        import time
        print("ready", flush=True)
        time.sleep(600)
    """, output=out)
    assert outcome.interrupted
    assert not outcome.timed_out
    assert outcome.exit_code == -signal.SIGTERM


def test_sigint_is_forwarded_so_a_module_can_clean_up(project: Project) -> None:
    out = Collected()
    out.on_line["ready"] = lambda: os.kill(os.getpid(), signal.SIGINT)
    outcome, _ = run(project, "c.py", """
        import sys, time
        try:
            print("ready", flush=True)
            time.sleep(600)
        except KeyboardInterrupt:
            print("cleaned up")
            sys.exit(7)
    """, output=out)
    assert outcome.interrupted
    assert out.lines == ["ready", "cleaned up"]
    assert outcome.exit_code == 7


def test_a_module_killed_by_a_signal(project: Project) -> None:
    outcome, _ = run(project, "k.sh", "kill -KILL $$\n")
    assert outcome.exit_code == -signal.SIGKILL
    assert outcome.describe() == "killed by SIGKILL"


@pytest.mark.skipif(not hasattr(signal, "SIGRTMIN"), reason="no real-time signals here")
def test_a_module_killed_by_a_real_time_signal(project: Project) -> None:
    outcome, _ = run(project, "rt.py", "import os\nos.kill(os.getpid(), 40)\n")
    assert outcome.exit_code == -40
    assert outcome.describe() == f"killed by signal 40 (SIGRTMIN+{40 - signal.SIGRTMIN})"
    assert execute.signal_name(200) == "signal 200"


def test_processes_left_behind_are_killed_and_reported(project: Project) -> None:
    pid_file = project.root / "daemon.pid"
    outcome, out = run(project, "d.sh", f"""
        sleep 600 &
        echo $! > {str(pid_file)!r}
        echo leaving
    """)
    assert outcome.exit_code == 0
    assert outcome.stray_processes
    assert out.lines == ["leaving"]
    assert dies(int(pid_file.read_text()))


def test_a_file_that_cannot_be_executed_is_a_failed_start(project: Project) -> None:
    # The config refuses such a file when it loads; a module may still rewrite another
    # one during the run, so the start can fail all the same.
    path = project.module("x.bin", "#!/bin/sh\n", mode=0o755)
    spec = cfg.module_spec(path.resolve(), project.root, display="config.json", key="k")
    path.write_text("\x7fnot really an executable\n")
    with Cancel() as cancel:
        outcome = execute.run_module(spec, context(project), dict(os.environ), Collected(),
                                     cancel)
    assert outcome.exit_code is None
    assert outcome.describe() == ("could not start: Exec format error (add a #! line or use "
                                  "a .py/.sh extension)")


def test_a_missing_interpreter_is_a_failed_start_naming_it(project: Project) -> None:
    outcome, _ = run(project, "y.run", "#!/nonexistent/interpreter\n", mode=0o755)
    assert outcome.exit_code is None
    assert "No such file or directory" in outcome.describe()


def test_peak_rss_is_recorded(project: Project) -> None:
    outcome, _ = run(project, "r.py", "block = bytearray(200 * 1024 * 1024)\nblock[::4096] = b'x' * "
                     "len(block[::4096])\n")
    assert outcome.peak_rss_mb is not None and outcome.peak_rss_mb >= 200


def test_cancel_wait_returns_at_once_on_a_signal() -> None:
    before = signal.getsignal(signal.SIGINT)  # ignored, when the tests run in the background
    with Cancel() as cancel:
        assert not cancel.wait(0)
        os.kill(os.getpid(), signal.SIGINT)
        assert cancel.wait(600)
        assert cancel.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.skipif(sys.platform != "linux", reason="/proc is Linux's")
def test_no_descriptor_leaks_across_runs(project: Project) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        run(project, "n.py", "print('x')\n")
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_module_really_does_not_see_the_token(project: Project) -> None:
    outcome, out = run(project, "g.py", """
        import os
        print(os.environ.get("GITHUB_TOKEN", "absent"), os.environ.get("GH_TOKEN", "absent"))
    """, env=dict(os.environ, GITHUB_TOKEN="ghs_abc", GH_TOKEN="gho_def"))
    assert out.lines == ["absent absent"]


def test_what_a_module_prints_is_made_inert(project: Project) -> None:
    """What a GitHub runner or a terminal would act on: bare CRs, escapes, controls."""
    outcome, out = run(project, "z.py", r"""
        import sys
        w = sys.stdout.buffer.write
        w(b"progress 10%\r::stop-commands::x\n")
        w(b"\x1b[31mred\x1b[0m and \x1b]0;title\x07plain \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n")
        w(b"bell\x07 nul\x00 del\x7f tab\tesc\x1b\n")
        w("c1 \u009b31m csi and \u0085 nel\n".encode())
        w(b"crlf\r\n")
        w(b"clean line\n")
        sys.stderr.buffer.write(b"err\x1b[1m bold\r\n")
        sys.exit(1)
    """)
    assert out.lines == [
        "::stop-commands::x",
        "red and plain link",
        r"bell\x07 nul\x00 del\x7f tab" + "\t" + r"esc\x1b",
        r"c1  csi and \x85 nel",
        "crlf",
        "clean line",
        "err bold",
    ]
    assert outcome.stderr_tail == ("err bold",)


def test_stdout_and_stderr_are_told_apart(project: Project) -> None:
    _, out = run(project, "s.py", """
        import sys
        print("to out", flush=True)
        print("to err", file=sys.stderr, flush=True)
    """)
    assert out.lines == ["to out", "to err"]
    assert out.streams == ["stdout", "stderr"]


def test_a_long_line_is_cut_into_pieces_that_keep_utf8_whole(project: Project) -> None:
    _, out = run(project, "u.py", """
        import sys
        sys.stdout.write("é" * (3 * 1024 * 1024 // 2 + 1) + "\\n")
    """)
    assert out.pieces >= 2
    assert "".join(out.lines) == "é" * (3 * 1024 * 1024 // 2 + 1)


def test_the_stderr_tail_is_capped_in_lines_and_size(project: Project) -> None:
    outcome, _ = run(project, "t.py", """
        import sys
        for i in range(3):
            sys.stderr.write(str(i) * 3_000_000 + "\\n")
        for i in range(20):
            sys.stderr.write(f"short {i}\\n")
        sys.stderr.write("x" * 2000 + "\\n")
        sys.exit(2)
    """)
    tail = outcome.stderr_tail
    assert len(tail) <= execute.STDERR_TAIL_LINES
    assert sum(len(line) for line in tail) <= execute.STDERR_TAIL_CHARS
    assert tail[-1] == "x" * execute.STDERR_LINE_CHARS + execute.CUT_MARK
    assert tail[-2] == "short 19"


SUBREAPER_DRIVER = """
import json, os, sys
from datetime import datetime, timezone
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from gitcron import config as cfg, execute
assert execute.become_subreaper()
root, module = Path(sys.argv[2]), Path(sys.argv[3])
spec = cfg.module_spec(module, root, display="c", key="k")
ctx = execute.RunContext(run_id="r", config_path=root / "config.json", log_dir=root, root=root,
                         tz=timezone.utc, last_run_date=None, started=datetime.now(timezone.utc))
with execute.Cancel() as cancel:
    outcome = execute.run_module(spec, ctx, dict(os.environ), lambda stream, text: None, cancel)
print(json.dumps([outcome.exit_code, outcome.stray_processes]))
"""


def run_as_subreaper(project: Project, name: str, code: str) -> tuple[int, bool]:
    """Run a module from a process of its own: becoming a subreaper lasts for a
    process's life, and should not change how the rest of the tests run."""
    module = project.module(name, code).resolve()
    done = subprocess.run([sys.executable, "-c", SUBREAPER_DRIVER, str(REPO), str(project.root),
                           str(module)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    exit_code, strays = json.loads(done.stdout)
    return exit_code, strays


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_CHILD_SUBREAPER is Linux's")


@linux_only
def test_a_process_that_left_the_group_with_setsid_is_killed_too(project: Project) -> None:
    pid_file = project.root / "escaped.pid"
    assert run_as_subreaper(project, "d.py", f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:  # a child of the escapee: in its new group
                time.sleep(600)
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(600)
        while not os.path.exists({str(pid_file)!r}):
            time.sleep(0.01)
    """) == (0, True)
    assert dies(int(pid_file.read_text()))


@linux_only
def test_leftover_zombies_are_reaped_and_not_reported(project: Project) -> None:
    """A child that exited but was never waited for is no process left running."""
    assert run_as_subreaper(project, "z.py", """
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "pass"]).wait()
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        import os; os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    """) == (0, False)


@linux_only
def test_become_subreaper_says_whether_it_worked() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                           "from gitcron import execute; print(execute.become_subreaper(), "
                           "execute.become_subreaper())", str(REPO)],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "True"]
