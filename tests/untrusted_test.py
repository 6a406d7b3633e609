"""Text the runner did not write (module output, a remote's message, a file name)
leaves it masked and inert, on every path: console, log, annotations, step
summary, outputs, review report, webhook. Through real orchestrator processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import Project
from gitsync_test import clone, git, remote  # noqa: F401 (a fixture)
from notifyservers import HookServer

from gitcron.codes import EXIT_FAILED, EXIT_PUSH
from gitcron.execute import MAX_LINE_BYTES

TOKEN = "ghs_0123456789abcdefABCDEF01234"  # 31 characters
assert len(TOKEN) == 31


def actions_env(tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "output.txt"), "GITHUB_EVENT_NAME": "schedule",
            "GITHUB_REPOSITORY": "octo/weather", "GITHUB_RUN_ID": "42"}


@pytest.fixture
def hook():
    server = HookServer()
    yield server
    server.close()


def everything_written(project: Project, result, tmp_path: Path, hook: HookServer) -> str:
    record = project.record()
    texts = [result.stdout, result.stderr, project.log_text(),
             json.dumps(record, ensure_ascii=False),
             (project.log_dir / "runs" / record["run_id"] / "review.txt").read_text(),
             (tmp_path / "summary.md").read_text(), (tmp_path / "output.txt").read_text()]
    texts += [posted.body.decode() for posted in hook.posted]
    return "\n".join(texts)


def test_a_secret_cut_by_a_long_stderr_line_is_masked_everywhere(
        project: Project, tmp_path: Path, hook: HookServer) -> None:
    """A stderr line over 1 MiB, written in two writes, with the secret across the
    place where the runner cuts it: neither half reaches anything derived from it."""
    before = MAX_LINE_BYTES - 15  # the cut falls after the secret's 15th character
    project.module("1.leaky.py", f"""\
        import os, sys
        token = os.environ["API_TOKEN"]
        # Past the cut by more than one read (64 KiB): the cut falls inside this write.
        sys.stderr.write("x" * {before} + token + "z" * 200_000)
        sys.stderr.flush()
        sys.stderr.write(" and then some\\n")
        sys.exit(3)
        """)
    project.config(notify=[{"webhook": hook.url("/hook")}])
    result = project.run("--no-push", env={"API_TOKEN": TOKEN, **actions_env(tmp_path)})
    assert result.returncode == EXIT_FAILED, result.stderr
    written = everything_written(project, result, tmp_path, hook)
    head, tail = TOKEN[:15], TOKEN[15:]
    assert tail not in written and head not in written
    assert "x***zzz" in project.log_text()  # the stream: cut in two, and masked whole
    assert "last lines of stderr" in written and "xxxxxxxx [...]" in written
    assert len(hook.posted) == 1


# A remote's message and a file name: outside text in the runner's own lines -------

HOSTILE = ("\x1b]0;pwned title\x07\x1b[2J\x1b]8;;https://evil.example/\x1b\\click here"
           "\x1b]8;;\x1b\\ \x9b31m\r")
RAW = ("\x1b", "\x07", "\x9b", "\r")


def inert(text: str) -> None:
    """No escape, bell, 8-bit CSI or bare carriage return: nothing a terminal acts on."""
    found = [repr(c) for c in RAW if c in text]
    assert not found, f"raw {found} in {text[-2000:]!r}"


def test_a_remotes_rejection_reaches_no_console_log_annotation_or_summary_raw(
        remote: Path, tmp_path: Path, hook: HookServer) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    hook_script = remote / "hooks" / "pre-receive"
    hook_script.write_text(f"#!{sys.executable}\nimport sys\n"
                           f"sys.stderr.buffer.write({('denied: ' + HOSTILE + chr(10)).encode()!r})\n"
                           "sys.exit(1)\n")
    hook_script.chmod(0o755)
    project.config({**project.read_config(), "notify": [{"webhook": hook.url("/h"),
                                                         "on": ["success"]}]})
    # Left uncommitted: committed with the run (a local commit would stop it, unpushed).
    env = actions_env(tmp_path)
    result = project.run(env=env)
    assert result.returncode == EXIT_PUSH, result.stdout + result.stderr
    assert "denied: " in result.stdout and "pwned title" not in result.stdout
    assert "click here" in result.stdout  # the words stay, the escapes go
    for text in (result.stdout, result.stderr, project.log_text(),
                 (tmp_path / "summary.md").read_text(), (tmp_path / "output.txt").read_text(),
                 *(posted.body.decode() for posted in hook.posted)):
        inert(text)
    assert len(hook.posted) == 1


def test_a_module_file_named_with_an_escape_sequence(project: Project, tmp_path: Path,
                                                     hook: HookServer) -> None:
    name = "1.\x1b[31mred\x1b]0;title\x07"
    project.module(f"{name}.py", "import sys\nprint('hello')\nsys.exit(3)\n")
    project.config(notify=[{"webhook": hook.url("/h")}])
    result = project.run("--no-push", env=actions_env(tmp_path))
    assert result.returncode == EXIT_FAILED, result.stdout + result.stderr
    shown = "1.\\x1b[31mred\\x1b]0;title\\x07"  # told, and findable, but inert
    assert f"| {shown} | hello\n" in result.stdout
    assert f"::group::[1/1] {shown}\n" in result.stdout
    # The runner's own lines show what a terminal would: the words, not the escapes.
    assert f"| {shown} | [1/1] starting modules/1.red.py\n" in project.log_text()
    record = project.record()
    review = (project.log_dir / "runs" / record["run_id"] / "review.txt").read_text()
    for text in (result.stdout, result.stderr, project.log_text(), review,
                 (tmp_path / "summary.md").read_text(), (tmp_path / "output.txt").read_text(),
                 *(posted.body.decode() for posted in hook.posted)):
        inert(text)
    listed = project.run("--list")
    assert shown in listed.stdout
    inert(listed.stdout)


@pytest.mark.parametrize("args", [("--only", "\x1b]0;x\x07"), ("--bogus", "\x1b[2J"),
                                  ("--since", "\x1b]8;;http://e/\x1b\\x")])
def test_arguments_a_dispatch_passes_on_come_back_inert(project: Project,
                                                         args: tuple[str, ...]) -> None:
    project.module("1.a.py", "print('ran')\n")
    project.config({})
    result = project.run(*args)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "\\x1b" in result.stderr
    inert(result.stderr)
