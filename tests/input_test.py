"""Input that looks valid but is not: one line on stderr, exit 2, nothing run,
nothing written. Each case through a real orchestrator process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR, REPO, Project
from notifyservers import HookServer

from gitcron import config as cfg
from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

RAN = "import pathlib\npathlib.Path('ran').write_text('yes')\n"


def refused(project: Project, result, *words: str) -> None:
    """One line naming the fault, exit 2, no module run, nothing written."""
    assert result.returncode == EXIT_USAGE, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (project.root / "ran").exists()
    assert not project.log_dir.exists()


@pytest.mark.parametrize(("name", "text", "words"), [
    ("config.yaml", "x: &r [*r]\n", ("config.yaml: x[0]: holds itself",)),
    ("config.yaml", "x: &r {a: *r}\n", ("config.yaml: x.a: holds itself",)),
    ("config.yaml", "1: x\n", ("line 1 column 1", "the key '1' is not text")),
    ("config.yaml", "? [a, b]\n: 1\n", ("line 1 column 3", "the key a list is not text")),
    ("config.yaml", "settings:\n  ~: 1\n", ("line 2 column 3", "the key '~' is not text")),
    ("config.yaml", "x: !!binary aGVsbG8=\n", ("config.yaml: x: a bytes is not a config value",)),
    ("config.yaml", "x: " + "9" * 5000 + "\n", ("a number of more than 4300 digits",)),
    ("config.json", '{"x": ' + "9" * 5000 + "}", ("a number of more than 4300 digits",)),
    ("config.json", '{"x\\ud800": 1}', ("a key in the top: holds a lone surrogate (\\ud800)",)),
    ("config.json", '{"a": {"b": ["\\udfff"]}}', ("a.b[0]: holds a lone surrogate (\\udfff)",)),
    ("config.json", '{"a": ' * 70 + "1" + "}" * 70, ("nested too deep to be a config",)),
])
def test_valid_looking_config_is_refused_in_one_line(project: Project, name: str, text: str,
                                                     words: tuple[str, ...]) -> None:
    project.module("1.a.py", RAN)
    path = project.root / name
    path.write_text(text)
    result = project.run("--config", str(path))
    refused(project, result, name, *words)
    assert path.read_text() == text


def test_a_config_larger_than_a_mebibyte_is_refused(project: Project) -> None:
    project.module("1.a.py", RAN)
    result = project.run("--config", "/dev/zero", timeout=30)
    refused(project, result, "/dev/zero: larger than 1 MiB")
    project.config({"filler": "x" * (1 << 20)})
    refused(project, project.run(), "config.json: larger than 1 MiB")


@pytest.mark.parametrize("count", ["99999999999999999999999", "0", "²", "1e3", "-5"])
def test_history_count_out_of_range_is_one_line(project: Project, count: str) -> None:
    project.config({})
    result = subprocess.run([sys.executable, str(ORCHESTRATOR), "history", "-n", count,
                             "--config", str(project.config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.splitlines() == [
        f"orchestrator.py history: argument -n: must be a whole number from 1 to 1000000 "
        f"(got {count!r}) (see --help)"]


# YAML 1.2's booleans -----------------------------------------------------------

NOTIFY_SNIPPET = """\
notify:
  - webhook: {url}
    on: [failed, partial]
"""


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)


def test_readme_yaml_examples_load_as_written(tmp_path: Path) -> None:
    """Every YAML example of the README, copied beside the shipped modules, loads;
    a channel's unquoted `on:` is the channel's statuses, not the boolean true."""
    blocks = yaml_blocks((REPO / "README.md").read_text())
    assert blocks, "README.md has a ```yaml example"
    root = tmp_path / "project"
    shutil.copytree(REPO / "modules", root / "modules",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for i, block in enumerate(blocks):
        path = root / f"example{i}.yaml"
        path.write_text(block)
        loaded = cfg.load(str(path))
        assert all(isinstance(key, str) for key in loaded.raw)
        for channel in loaded.notify:
            assert all(status in cfg.RUN_STATUSES for status in channel.on)
        raw_channels = loaded.raw.get("notify", [])
        assert all(True not in entry for entry in raw_channels)


def test_a_channel_written_the_natural_way_in_yaml_is_told(project: Project) -> None:
    hook = HookServer()
    try:
        project.module("1.fails.py", "import sys\nsys.exit(3)\n")
        path = project.root / "config.yaml"
        path.write_text(NOTIFY_SNIPPET.format(url=hook.url("/hook")))
        result = project.run("--config", str(path))
        assert result.returncode == EXIT_FAILED, result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert len(hook.posted) == 1
        assert json.loads(hook.posted[0].body)["run"]["status"] == "failed"
    finally:
        hook.close()


def test_on_off_yes_no_are_words_as_keys_and_values(project: Project) -> None:
    """A module's own settings keep the words it was given; true/false in any case
    stay booleans; the shipped modules read the file the same way."""
    project.module("1.show.py", """\
        import json, os, sys
        sys.path.insert(0, os.path.join(os.getcwd(), "modules"))
        import _common
        print(json.dumps(_common.settings()["mine"]))
        """)
    shutil.copy(REPO / "modules" / "_common.py", project.root / "modules" / "_common.py")
    path = project.root / "config.yaml"
    path.write_text("mine: {on: off, yes: no, y: n, ON: Off, a: TRUE, b: tRuE, c: False}\n"
                    "modules: [modules/1.show.py]\n")
    expected = {"on": "off", "yes": "no", "y": "n", "ON": "Off", "a": True, "b": True,
                "c": False}
    assert cfg.load(str(path)).raw["mine"] == expected
    result = project.run("--config", str(path), "--no-push")
    assert result.returncode == EXIT_OK, result.stderr
    assert json.dumps(expected) in result.stdout, result.stdout


def test_a_boolean_setting_given_as_yes_is_refused(project: Project) -> None:
    project.module("1.a.py", RAN)
    path = project.root / "config.yaml"
    path.write_text("modules:\n  - path: modules/1.a.py\n    critical: yes\n")
    refused(project, project.run("--config", str(path)),
            "modules[0].critical: must be true or false (got \"yes\")")


# .env and --since ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "words"), [
    ('A=1\nB="unclosed\nC=3\n', "line 2: not a NAME=value line"),
    ("A=1\nthis is not a line\n", "line 2: not a NAME=value line"),
    ("BIG=" + "x" * 200_000 + "\n", "BIG: 200004 bytes; one environment variable can hold at "
                                    "most 131071"),
])
def test_an_env_file_no_module_could_get_is_refused(project: Project, text: str,
                                                     words: str) -> None:
    project.module("1.a.py", RAN)
    project.config({})
    (project.root / ".env").write_text(text)
    refused(project, project.run(), ".env: " + words)


def test_an_env_file_of_50_mb_is_refused_at_load(project: Project) -> None:
    project.module("1.a.py", RAN)
    project.config({})
    with open(project.root / ".env", "w") as handle:
        handle.write("BIG=")
        handle.write("x" * 50_000_000)
    refused(project, project.run(), ".env: larger than 1 MiB")


def test_an_env_value_just_within_the_limit_reaches_the_module(project: Project) -> None:
    project.module("1.a.py", "import os\nprint(len(os.environ['BIG']))\n")
    project.config({})
    (project.root / ".env").write_text("BIG=" + "x" * (131071 - 4) + "\n")
    result = project.run("--no-push")
    assert result.returncode == EXIT_OK, result.stderr
    assert "| 131067\n" in result.stdout


def test_an_env_folder_is_refused(project: Project) -> None:
    project.module("1.a.py", RAN)
    project.config({})
    (project.root / ".env").mkdir()
    refused(project, project.run(), ".env: not a file")


@pytest.mark.parametrize(("since", "words"), [
    ("2026-03-29T02:30", "'2026-03-29T02:30' does not exist in Europe/Paris (the clocks skip "
                         "it): give the time in UTC, e.g. 2026-03-29T00:30:00Z or "
                         "2026-03-29T01:30:00Z"),
    ("2026-10-25T02:30", "'2026-10-25T02:30' happens twice in Europe/Paris (the clocks go "
                         "back): give the time in UTC, 2026-10-25T00:30:00Z or "
                         "2026-10-25T01:30:00Z"),
])
def test_a_since_that_daylight_saving_makes_unclear_is_refused(project: Project, since: str,
                                                               words: str) -> None:
    project.module("1.a.py", RAN)
    project.config({"timezone": "Europe/Paris"})
    for args in (("--since", since), ("--since", "2026-01-01", "--until", since)):
        refused(project, project.run(*args, "--no-push"), "--", words)


def test_a_local_since_next_to_the_change_is_taken_as_written(project: Project) -> None:
    project.module("1.a.py", "import os\nprint(os.environ['PIPELINE_WINDOW_START'])\n")
    project.config({"timezone": "Europe/Paris"})
    result = project.run("--since", "2026-10-25T03:30", "--until", "2026-10-26", "--no-push")
    assert result.returncode == EXIT_OK, result.stderr
    assert "| 2026-10-25T03:30:00+01:00\n" in result.stdout
