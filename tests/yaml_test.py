"""config.yaml: the same keys as config.json, and a write-back that changes one line."""

from __future__ import annotations

import pytest
from conftest import OK, Project

from gitcron import config as cfg
from gitcron import plan as planning
from gitcron.cli import format_plan
from gitcron.codes import EXIT_OK, EXIT_USAGE, FatalError

YAML = """\
# The pipeline of the weather job.
defaults: &module
  critical: false
  timeout_seconds: 120

modules:
  - modules/1.a.py
  - path: modules/2.b.py
    <<: *module
    retries: 2
timezone: Europe/Berlin   # local time in log names
notes: |
  A block string,
  kept as it is.
last_run_date: "2026-01-01T00:00:00+00:00"  # moved by each run
git:
  push: never
"""


def yaml_project(project: Project, text: str = YAML, name: str = "config.yaml") -> Project:
    project.module("1.a.py", OK)
    project.module("2.b.py", OK)
    (project.root / name).write_bytes(text.encode())
    return project


def run_yaml(project: Project, *args: str, name: str = "config.yaml"):
    return project.run("--config", str(project.root / name), *args)


def test_yaml_and_json_of_one_project_give_the_same_plan(project: Project) -> None:
    yaml_project(project)
    from_yaml = cfg.load(str(project.root / "config.yaml"))
    project.config({"defaults": {"critical": False, "timeout_seconds": 120},
                    "modules": ["modules/1.a.py", {"path": "modules/2.b.py", "critical": False,
                                                   "timeout_seconds": 120, "retries": 2}],
                    "timezone": "Europe/Berlin", "git": {"push": "never"}})
    from_json = cfg.load(str(project.config_path))
    assert from_yaml.kind == "yaml" and from_json.kind == "json"
    assert format_plan(planning.build(from_yaml, planning.Selection())) == format_plan(
        planning.build(from_json, planning.Selection()))
    assert from_yaml.last_run_date == "2026-01-01T00:00:00+00:00"  # a string, not a datetime


def test_a_run_changes_exactly_the_last_run_date_line(project: Project) -> None:
    yaml_project(project)
    result = run_yaml(project)
    assert result.returncode == EXIT_OK, result.stderr
    after = (project.root / "config.yaml").read_text()
    changed = [(a, b) for a, b in zip(YAML.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][1].startswith("last_run_date: '20")
    new_value = changed[0][1].split("'")[1]
    assert new_value.endswith(("+01:00", "+02:00"))
    assert changed[0][1] == f"last_run_date: '{new_value}'  # moved by each run"  # comment kept
    assert cfg.load(str(project.root / "config.yaml")).last_run_date == new_value


def test_a_missing_last_run_date_is_appended_and_crlf_kept(project: Project) -> None:
    text = YAML.replace('last_run_date: "2026-01-01T00:00:00+00:00"  # moved by each run\n', "")
    yaml_project(project, text.replace("\n", "\r\n"))
    assert run_yaml(project).returncode == EXIT_OK
    after = (project.root / "config.yaml").read_bytes().decode()
    assert after.startswith(text.replace("\n", "\r\n"))
    appended = after[len(text.replace("\n", "\r\n")):]
    assert appended.startswith("last_run_date: '") and appended.endswith("'\r\n")
    assert appended.count("\n") == 1


def test_a_file_that_cannot_take_one_line_is_left_alone(project: Project) -> None:
    flow = "{modules: [modules/1.a.py], git: {push: never}}\n"
    yaml_project(project, flow)
    result = run_yaml(project)
    assert result.returncode == EXIT_OK
    assert (project.root / "config.yaml").read_text() == flow
    assert "last_run_date could not be written by changing one line" in project.log_text()


@pytest.mark.parametrize(("text", "words"), [
    ("modules: [\n", "config.yaml: not valid YAML at line 2"),
    ("timezone: !!python/object:os.system echo\n", "custom tags are not allowed"),
    ("x: !custom 1\n", "custom tags are not allowed"),
    ("- a\n- b\n", "must hold a mapping at the top, not list"),
    ("timezone: UTC\ntimezone: Europe/Paris\n", "the key 'timezone' appears twice"),
    ("mask_envs: [A]\n", "unknown key 'mask_envs': did you mean 'mask_env'?"),
    ("default_timeout_seconds: 9999999\n", "default_timeout_seconds: must be a number of seconds"),
])
def test_bad_yaml_is_one_line_naming_the_file(project: Project, text: str, words: str) -> None:
    yaml_project(project, text)
    result = run_yaml(project)
    assert result.returncode == EXIT_USAGE
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "config.yaml" in result.stderr and words in result.stderr, result.stderr
    assert (project.root / "config.yaml").read_text() == text
    assert not project.log_dir.exists()


def test_set_key_verifies_before_it_writes(project: Project) -> None:
    text = "a: 1\nlast_run_date: >-\n  2026-01-01T00:00:00+00:00\n"
    yaml_project(project, text)
    config = cfg.load(str(project.root / "config.yaml"))
    with pytest.raises(FatalError, match="could not be written by changing one line"):
        cfg.set_key(config, "last_run_date", "2026-11-23T06:00:00+00:00")
    assert (project.root / "config.yaml").read_text() == text


def test_yml_is_found_too(project: Project) -> None:
    yaml_project(project, "git: {push: never}\n", name="config.yml")
    result = project.run("--config", str(project.root / "config.yml"), "--list")
    assert result.returncode == EXIT_OK
    assert result.stdout.splitlines()[1].split()[:2] == ["1", "1.a"]


def test_a_hash_inside_the_value_is_not_a_comment(project: Project) -> None:
    yaml_project(project, "git: {push: never}\nlast_run_date: '2026-01-01T00:00:00+00:00' # a #b\n")
    config = cfg.load(str(project.root / "config.yaml"))
    cfg.set_key(config, "last_run_date", "2026-11-23T06:00:00+00:00")
    assert (project.root / "config.yaml").read_text().endswith(
        "last_run_date: '2026-11-23T06:00:00+00:00' # a #b\n")
