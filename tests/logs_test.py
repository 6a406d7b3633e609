from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TextIO

import pytest
from conftest import Project
from loguru import logger

from gitcron import config as cfg
from gitcron import contract, execute, logs
from gitcron.logs import MASK, Masker, RunLog

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| [A-Z]+ +\| [\w.\-]+ \| .*$")


def test_masker_masks_longest_first_and_each_line_of_a_multiline_secret() -> None:
    masker = Masker(["abcd", "abcdefgh", "-----BEGIN KEY-----\nline-two-of-key\n"])
    assert masker("x abcdefgh y abcd z") == "x *** y *** z"
    assert masker("-----BEGIN KEY----- then line-two-of-key") == "*** then ***"


def test_masker_ignores_values_too_short_to_mask_safely() -> None:
    masker = Masker(["abc", "", "  "])
    assert not masker
    assert masker("abc") == "abc"


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "db_password", "MY_SECRET_X", "AWS_API_KEY",
                                  "SSH_PRIVATE_KEY", "PASSWD", "GCP_CREDENTIALS"])
def test_secret_names(name: str) -> None:
    assert logs.secret_values({name: "value1", "HOME": "/root"}, []) == ["value1"]


def test_mask_env_names_any_variable() -> None:
    env = {"DATABASE_URL": "postgres://u:p@h/db", "OTHER": "plain"}
    assert logs.secret_values(env, ["DATABASE_URL"]) == ["postgres://u:p@h/db"]


def test_every_line_of_the_file_has_the_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    handle = open(tmp_path / "x.log", "x", encoding="utf-8")
    with RunLog(timezone.utc, Masker(["s3cr3t-value"])) as runlog:
        runlog.attach_file(handle)
        logger.info("one {brace} line")
        logger.bind(module="2.transform").warning("two\nlines with s3cr3t-value")
        logger.debug("debug only in the file")
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("unexpected")
        runlog.output("1.fetch", "stdout", "out 1\n::add-mask::hunter2hunter2\nhunter2hunter2 here\n")
    text = (tmp_path / "x.log").read_text()
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines), text
    assert "| INFO     | orchestrator | one {brace} line" in lines[0]
    assert lines[1].endswith("| WARNING  | 2.transform | two")
    assert lines[2].endswith("| WARNING  | 2.transform | lines with ***")
    assert any(line.endswith("| ERROR    | orchestrator | ValueError: bad") for line in lines)
    assert any("| ERROR    | orchestrator | Traceback (most recent call last):" in ln for ln in lines)
    assert lines[-2].endswith("| INFO     | 1.fetch | out 1")
    assert lines[-1].endswith("| INFO     | 1.fetch | *** here")
    assert "hunter2" not in text and "s3cr3t" not in text
    console = capsys.readouterr().out
    assert "debug only in the file" not in console
    assert "*** here" in console and "hunter2" not in console


def _connect(url: str) -> None:
    raise ConnectionError("cannot reach the database")


def test_a_traceback_in_the_log_shows_no_values_of_variables(tmp_path: Path) -> None:
    """These logs get committed: a traceback names the code, never what a variable held."""
    handle = open(tmp_path / "x.log", "x", encoding="utf-8")
    with RunLog(timezone.utc, Masker()) as runlog:
        runlog.attach_file(handle)
        connection = "postgres://user:opensesame@db/x"  # not a masked value
        try:
            _connect(connection)
        except ConnectionError:
            logger.exception("unexpected")
    text = (tmp_path / "x.log").read_text()
    assert "ConnectionError: cannot reach the database" in text
    assert "_connect(connection)" in text
    assert "opensesame" not in text
    assert all(LINE.match(line) for line in text.splitlines()), text


def test_a_whole_run_prints_only_lines_of_the_log_format(project: Project) -> None:
    """Console and file alike, from the first line to the last, and nothing on stderr:
    the runner's own lines, a module's both streams, a failure and its stderr tail."""
    project.module("1.talk.py", "import sys\nprint('out {0} %s')\n"
                                "print('err line', file=sys.stderr)\nsys.exit(3)\n")
    project.config({})
    result = project.run()
    assert result.returncode == 1
    assert result.stderr == ""
    for text in (result.stdout, project.log_text()):
        lines = text.splitlines()
        assert all(LINE.match(line) for line in lines), text
        assert any(line.endswith("| INFO     | 1.talk | out {0} %s") for line in lines)
        assert any(line.endswith("| STDERR   | 1.talk | err line") for line in lines)
        assert any(" | ERROR    | 1.talk | failed (critical): exit code 3" in line
                   for line in lines)


def test_times_are_in_the_configured_zone(tmp_path: Path) -> None:
    from gitcron.config import zone

    handle = open(tmp_path / "x.log", "x", encoding="utf-8")
    tz = zone("Asia/Kolkata")
    with RunLog(tz, Masker(), verbose=True) as runlog:
        runlog.attach_file(handle)
        runlog._console = io.StringIO()
        logger.info("now")
    stamp = (tmp_path / "x.log").read_text()[:23]
    logged = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=tz)
    assert abs((datetime.now(timezone.utc) - logged).total_seconds()) < 3600


SECRET = "S3cr3t-0123456789-abcdefghij-KLMNOPQRSTU"  # 40 characters


def module_run(project: Project, name: str, code: str, runlog: RunLog,
               env: dict[str, str] | None = None) -> execute.Outcome:
    """A real module, its output through `runlog` as a run sends it."""
    path = project.module(name, code)
    spec = cfg.module_spec(path.resolve(), project.root, display="c", key="k")
    ctx = execute.RunContext(
        run_id="r", config_path=project.config_path, log_dir=project.log_dir, root=project.root,
        tz=timezone.utc, last_run_date=None, started=datetime.now(timezone.utc))
    with execute.Cancel() as cancel:
        return execute.run_module(spec, ctx, contract.module_env(env or dict(os.environ), ctx, spec),
                                  partial(runlog.output, spec.name), cancel)


def bodies(text: str, module: str) -> list[str]:
    """The messages of a module's lines, in order."""
    marker = f" | {module} | "
    return [line.split(marker, 1)[1] for line in text.splitlines() if marker in line]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "x.log"


def open_log(path: Path) -> TextIO:
    return open(path, "x", encoding="utf-8")


def test_a_secret_straddling_the_cut_of_a_long_line_is_masked(project: Project, log_file: Path
                                                              ) -> None:
    console = io.StringIO()
    with RunLog(timezone.utc, Masker([SECRET])) as runlog:
        runlog.attach_file(open_log(log_file))
        runlog._console = console
        outcome = module_run(project, "1.long.py", f"""
            import sys
            sys.stdout.write({SECRET!r} * (3 * 1024 * 1024 // 40) + "\\n")
            sys.stdout.write("tail " + {SECRET!r}[:20])
            sys.stdout.flush()
            sys.stdout.write({SECRET!r}[20:] + " end\\n")
        """, runlog)
    assert outcome.exit_code == 0
    for text in (log_file.read_text(), console.getvalue()):
        lines = bodies(text, "1.long")
        assert len(lines) >= 3  # the long line came in pieces
        assert "".join(lines[:-1]) == MASK * (3 * 1024 * 1024 // 40)
        assert lines[-1] == f"tail {MASK} end"
        assert SECRET[:20] not in text and SECRET[20:] not in text


def test_masker_split_holds_back_what_may_start_a_secret() -> None:
    masker = Masker([SECRET])
    head, tail = masker.split("x" * 200 + SECRET + "y" * 100 + SECRET[:15])
    assert head.startswith("x" * 200 + MASK + "y")
    assert len(tail) == masker.longest - 1
    assert masker(tail + SECRET[15:]).endswith(MASK)
    assert Masker().split("abc") == ("abc", "")


@pytest.mark.parametrize("value", [SECRET, "ghs_16C7e42F292c6912E7710c838347Ae178B4a", "äöü-pässwörd"])
def test_base64_forms_are_masked_at_every_alignment(value: str) -> None:
    masker = Masker([value])
    for before in range(6):
        for after in range(4):
            for inner in (value, "x-access-token:" + value):
                encoded = base64.b64encode(b"a" * before + inner.encode() + b"b" * after).decode()
                masked = masker(f"header {encoded} trailer")
                assert MASK in masked, (before, after, inner)
                assert len(masked) < len(encoded)
    # What is left never decodes to the value: at most the characters next to a cut.
    assert masker(base64.b64encode(value.encode()).decode()).count(MASK) == 1


def test_base64_forms_follow_the_runners_alignments() -> None:
    assert logs.base64_forms("abcd") == ["YWJjZ", "FiY2", "hYmNk"]
    for offset, form in enumerate(logs.base64_forms(SECRET)):
        for after in range(3):
            assert form in base64.b64encode(b"z" * offset + SECRET.encode() + b"z" * after).decode()


def test_add_mask_values_get_their_base64_forms_masked_too(log_file: Path) -> None:
    with RunLog(timezone.utc, Masker()) as runlog:
        runlog.attach_file(open_log(log_file))
        runlog._console = io.StringIO()
        encoded = base64.b64encode(b"user:added-secret-1234").decode()
        runlog.output("m", "stdout", f"  ::ADD-MASK::added-secret-1234\nauth {encoded}\n")
    text = log_file.read_text()
    assert "added-secret" not in text and encoded not in text
    assert "add-mask" not in text.lower()


def test_a_secret_split_across_two_reads_is_masked(project: Project, log_file: Path) -> None:
    with RunLog(timezone.utc, Masker([SECRET])) as runlog:
        runlog.attach_file(open_log(log_file))
        runlog._console = io.StringIO()
        module_run(project, "1.split.py", f"""
            import sys, time
            for cut in range(0, 40, 7):
                sys.stdout.write("a " + {SECRET!r}[:cut])
                sys.stdout.flush()
                time.sleep(0.01)
                sys.stdout.write({SECRET!r}[cut:] + " b\\n")
                sys.stdout.flush()
        """, runlog)
    assert bodies(log_file.read_text(), "1.split") == [f"a {MASK} b"] * 6


def test_stderr_lines_carry_the_stderr_level(project: Project, log_file: Path) -> None:
    console = io.StringIO()
    with RunLog(timezone.utc, Masker()) as runlog:
        runlog.attach_file(open_log(log_file))
        runlog._console = console
        module_run(project, "1.both.py", """
            import sys
            print("out line", flush=True)
            print("err line", file=sys.stderr, flush=True)
        """, runlog)
        logger.log("STDERR", "the orchestrator may use the level too")
    for text in (log_file.read_text(), console.getvalue()):
        assert "| INFO     | 1.both | out line" in text
        assert "| STDERR   | 1.both | err line" in text
        assert all(LINE.match(line) for line in text.splitlines())
    assert logger.level("STDERR").no == 25


def test_workflow_command_lines_get_their_level_and_reach_the_callback(log_file: Path) -> None:
    seen: list[tuple[str, str, dict, str]] = []
    console = io.StringIO()
    with RunLog(timezone.utc, Masker(["hunter2hunter2"]),
                on_command=lambda *args: seen.append(args)) as runlog:  # type: ignore[arg-type]
        runlog.attach_file(open_log(log_file))
        runlog._console = console
        runlog.output("2.load", "stdout", "\n".join([
            "before",
            "::error::it broke",
            "  ::Warning file=a.csv,line=3,title=T%3A1::disk%0Anearly full 100%25",
            "::notice::for hunter2hunter2",
            "\t::DEBUG::detail",
            "::unknown::stays plain",
            "text ::error::not at the start",
            "::error no end",
            "after",
        ]) + "\n")
        runlog.output("2.load", "stderr", "::error::on stderr too\n")
    lines = log_file.read_text().splitlines()
    assert [(line.split(" | ")[1].strip(), line.split(" | ", 3)[3]) for line in lines] == [
        ("INFO", "before"),
        ("ERROR", "it broke"),
        ("WARNING", "disk"),
        ("WARNING", "nearly full 100%"),
        ("INFO", f"for {MASK}"),
        ("DEBUG", "detail"),
        ("INFO", "::unknown::stays plain"),
        ("INFO", "text ::error::not at the start"),
        ("INFO", "::error no end"),
        ("INFO", "after"),
        ("ERROR", "on stderr too"),
    ]
    assert seen == [
        ("2.load", "error", {}, "it broke"),
        ("2.load", "warning", {"file": "a.csv", "line": "3", "title": "T:1"},
         "disk\nnearly full 100%"),
        ("2.load", "notice", {}, f"for {MASK}"),
        ("2.load", "debug", {}, "detail"),
        ("2.load", "error", {}, "on stderr too"),
    ]
    assert "detail" not in console.getvalue()  # DEBUG: the file only, unless verbose


def test_many_lines_in_one_chunk_are_all_kept_in_order(project: Project, log_file: Path) -> None:
    with RunLog(timezone.utc, Masker([SECRET])) as runlog:
        runlog.attach_file(open_log(log_file))
        runlog._console = io.StringIO()
        outcome = module_run(project, "1.many.py", """
            import sys
            for i in range(100_000):
                sys.stdout.write(f"{i:07d} {'x' * 52}\\n")
        """, runlog, env=dict(os.environ, PYTHONUNBUFFERED=""))
    assert outcome.exit_code == 0
    assert bodies(log_file.read_text(), "1.many") == [f"{i:07d} {'x' * 52}" for i in range(100_000)]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: what a full disk under log_dir looks like."""
    mount = tmp_path / "small disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_stops_the_module_and_the_console_goes_on(project: Project, full_disk: Path
                                                            ) -> None:
    pid_file = project.root / "module.pid"
    console = io.StringIO()
    with RunLog(timezone.utc, Masker()) as runlog:
        runlog.attach_file(open_log(full_disk / "x.log"))
        runlog._console = console
        outcome = module_run(project, "1.chatty.py", f"""
            import os, sys, time
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            for i in range(100_000):
                print(f"{{i:07d}} " + "x" * 52)
            time.sleep(600)
        """, runlog)
        logger.info("still on the console")
    assert outcome.write_error == "No space left on device"
    assert outcome.exit_code == -signal.SIGTERM and not outcome.timed_out
    assert outcome.describe() == ("stopped: its output could not be written to the log "
                                  "(No space left on device)")
    assert runlog.write_error.startswith("cannot write the log file ")
    text = console.getvalue()
    assert text.count("| ERROR    | orchestrator | cannot write the log file") == 1
    assert text.rstrip().endswith("| INFO     | orchestrator | still on the console")
    assert int(pid_file.read_text()) not in execute._children()


def test_a_full_disk_fails_the_run_and_runs_nothing_more(project: Project, full_disk: Path
                                                         ) -> None:
    project.module("1.chatty.py", """
        import time
        for i in range(100_000):
            print(f"{i:07d} " + "x" * 52)
        time.sleep(600)
    """)
    project.module("2.next.py", "open('next ran', 'w').close()\n")
    project.config(log_dir=str(full_disk), modules=[
        {"path": "modules/1.chatty.py", "critical": False}, "modules/2.next.py"])
    result = project.run("--no-push")
    assert result.returncode == 1
    assert "failed (non-critical): stopped: its output could not be written" in result.stdout
    assert result.stdout.count("cannot write the log file") == 1
    assert not (project.root / "next ran").exists()


def test_a_secret_cut_with_a_long_stderr_line_leaks_nothing(project: Project) -> None:
    """The failure message repeats the last stderr lines, each cut short: the cut
    may fall inside a secret, whose head alone would not be masked."""
    secret = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd"
    for pad in (470, 480, 490, 499):
        project.module("1.leak.py", f"import os, sys\nsys.stderr.write('x' * {pad} + "
                       "os.environ['MY_SECRET'] + '\\n')\nsys.exit(3)\n")
        project.config({})
        result = project.run(env={"MY_SECRET": secret})
        for text in (result.stdout, result.stderr, *(p.read_text() for p in project.logs())):
            assert "ABCDEFGHIJ" not in text, pad


def test_a_secret_in_a_module_name_is_masked_in_the_line_prefix(project: Project) -> None:
    project.module("1.xSuperSecretValue99y.sh", "echo hello; exit 3\n")
    project.config(modules=[{"path": "modules/1.xSuperSecretValue99y.sh", "critical": False}])
    result = project.run(env={"MY_SECRET": "SuperSecretValue99"})
    assert "| INFO     | 1.x***y | hello" in result.stdout
    for text in (result.stdout, project.log_text(), json.dumps(project.record())):
        assert "SuperSecretValue99" not in text


def test_a_disk_full_before_the_run_starts_runs_no_module(project: Project, full_disk: Path
                                                          ) -> None:
    (full_disk / "filler").write_bytes(b"x" * (2 << 20))  # until the disk refuses more
    project.module("1.work.py", "open('work ran', 'w').close()\n")
    project.config(log_dir=str(full_disk))
    result = project.run("--no-push")
    assert result.returncode == 1
    assert "cannot write the log file" in result.stdout
    assert not (project.root / "work ran").exists()  # no work goes unrecorded
