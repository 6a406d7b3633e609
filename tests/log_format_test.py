"""`--log-format json`: one JSON object per console line; the log file keeps its format."""

from __future__ import annotations

import json
import re
from typing import Any

from conftest import OK, Project

TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| [A-Z]+ *\| [^|]+ \| .*")
KEYS = ["time", "level", "module", "message", "run_id"]


def json_lines(stdout: str) -> list[dict[str, Any]]:
    lines = stdout.splitlines()
    assert lines, "no console output"
    objects = [json.loads(line) for line in lines]
    assert all(list(obj) == KEYS for obj in objects)
    return objects


def test_every_console_line_is_an_object_and_the_log_keeps_its_format(project: Project
                                                                       ) -> None:
    project.module("1.talk.py", "import sys\nprint('out {not a format} \"quoted\"')\n"
                                "print('err line', file=sys.stderr)\n"
                                "print('::warning::look here')\n")
    project.module("2.skip.py", "import sys\nsys.exit(10)\n")
    project.config()
    done = project.run("--no-push", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    objects = json_lines(done.stdout)
    run_id = project.record()["run_id"]
    assert {obj["run_id"] for obj in objects} == {run_id}
    said = {(obj["module"], obj["level"], obj["message"]) for obj in objects}
    assert ("1.talk", "INFO", 'out {not a format} "quoted"') in said
    assert ("1.talk", "STDERR", "err line") in said
    assert ("1.talk", "WARNING", "look here") in said
    assert any(m == "orchestrator" and msg.startswith(f"run {run_id} success") for m, _, msg in said)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", obj["time"])
               for obj in objects)
    log = project.log_text()
    assert all(TEXT_LINE.fullmatch(line) for line in log.splitlines())
    assert 'out {not a format} "quoted"' in log and "{\"time\"" not in log


def test_json_lines_are_masked_and_sanitised(project: Project) -> None:
    project.module("1.leak.py", "import os\nprint('key', os.environ['SERVICE_TOKEN'])\n"
                                "print('::add-mask::later-secret')\nprint('now later-secret')\n"
                                "print('\\x1b[31mred\\x1b[0m bell\\x07 end')\n")
    project.config()
    done = project.run("--no-push", "--log-format", "json",
                       env={"SERVICE_TOKEN": "tok-123456"})
    assert done.returncode == 0, done.stderr
    assert "tok-123456" not in done.stdout and "later-secret" not in done.stdout
    messages = [obj["message"] for obj in json_lines(done.stdout) if obj["module"] == "1.leak"]
    assert messages[1:4] == ["key ***", "now ***", "red bell\\x07 end"]


def test_verbose_json_has_debug_lines(project: Project) -> None:
    project.module("1.ok.py", OK)
    project.config()
    done = project.run("--no-push", "--log-format", "json", "-v")
    assert "DEBUG" in {obj["level"] for obj in json_lines(done.stdout)}


def test_a_failure_in_json(project: Project) -> None:
    project.module("1.bad.py", "import sys\nprint('broken: x', file=sys.stderr)\nsys.exit(3)\n")
    project.config()
    done = project.run("--no-push", "--log-format", "json")
    assert done.returncode == 1
    errors = [obj["message"] for obj in json_lines(done.stdout) if obj["level"] == "ERROR"]
    assert any("exit code 3" in message for message in errors)
    assert "broken: x" in errors  # the stderr tail: one object per line


def test_an_unknown_format_is_one_line_and_exit_2(project: Project) -> None:
    project.module("1.ok.py", OK)
    project.config()
    done = project.run("--no-push", "--log-format", "xml")
    assert done.returncode == 2
    assert "--log-format" in done.stderr and "'xml'" in done.stderr
    assert project.records() == []
