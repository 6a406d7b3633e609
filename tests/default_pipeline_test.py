"""The shipped pipeline, as a fresh clone runs it: offline, on the bundled data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Project, committed, stage_env


def fresh_copy(tmp_path: Path) -> Path:
    root = tmp_path / "fresh clone"
    root.mkdir()
    shutil.copy(REPO / "orchestrator.py", root / "orchestrator.py")
    (root / "config.json").write_bytes(committed("config.json"))
    for folder in ("gitcron", "modules", "sample_data"):
        shutil.copytree(REPO / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "orchestrator.py", "--no-push"], cwd=root,
                          capture_output=True, text=True, timeout=120)


def latest_record(root: Path) -> dict:
    records = [json.loads(p.read_text()) for p in (root / "data and logs").rglob("workflow_*.json")]
    return max(records, key=lambda r: (r["started"], r["run_id"]))


def test_the_default_pipeline_runs_then_skips(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    first = run(root)
    assert first.returncode == 0, first.stdout + first.stderr
    record = latest_record(root)
    assert [(m["name"], m["status"]) for m in record["modules"]] == [
        ("1.file_retrieval", "success"), ("2.transform_data", "success"),
        ("0.retention_policy", "skipped")]
    data = root / "data and logs" / "data"
    assert (data / "seattle-weather.csv").read_bytes() == (
        REPO / "sample_data" / "seattle-weather.csv").read_bytes()
    assert (data / "seattle-weather.clean.csv").read_text().startswith(
        "date,precipitation,temp_max,temp_min,wind,weather\n2012-01-01,")
    assert "last_run_date" in json.loads((root / "config.json").read_text())
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["seattle-weather"]["bytes"] == 47838
    summary = json.loads((data / "seattle-weather.summary.json").read_text())
    assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (1461, 1461, 0)
    assert not (data / "quarantine").exists()

    second = run(root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [m["status"] for m in latest_record(root)["modules"]] == ["skipped"] * 3


def test_a_dry_run_of_a_fresh_clone_writes_no_data(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    result = subprocess.run([sys.executable, "orchestrator.py", "--no-push", "--dry-run"],
                            cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seattle-weather: would download: never downloaded" in result.stdout
    assert [m["status"] for m in latest_record(root)["modules"]] == [
        "success", "skipped", "skipped"]
    assert not (root / "data and logs" / "data").exists()
    assert "last_run_date" not in json.loads((root / "config.json").read_text())


def test_force_runs_retrieval_and_transform_again(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    assert run(root).returncode == 0
    forced = subprocess.run([sys.executable, "orchestrator.py", "--no-push", "--force"],
                            cwd=root, capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert [m["status"] for m in latest_record(root)["modules"]] == [
        "success", "success", "skipped"]


def test_a_bad_source_fails_the_run_and_says_why(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    config = json.loads((root / "config.json").read_text())
    config["sources"][0]["url"] = "sample_data/no-such-file.csv"
    (root / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    result = run(root)
    assert result.returncode == 1
    assert [m["status"] for m in latest_record(root)["modules"]] == [
        "failed", "not_run", "not_run"]
    log = next((root / "data and logs").rglob("workflow_*.log")).read_text()
    assert "ERROR    | 1.file_retrieval | " in log
    assert "seattle-weather: failed: no such file: " in log
    assert "last_run_date" not in json.loads((root / "config.json").read_text())


# ---------------------------------------------------------------- a YAML config

SHIPPED_YAML = """\
# The shipped pipeline, configured in YAML: comments, an anchor, a block string.
modules:
  - modules/1.file_retrieval.py
  - modules/2.transform_data.py
  - {path: modules/0.retention_policy.py, critical: false}
log_dir: data and logs
timezone: Europe/Berlin
defaults: &patient
  timeout_seconds: 20
  retries: 0
sources:
  - id: seattle-weather
    url: sample_data/seattle-weather.csv
    format: csv
    <<: *patient
retrieval: *patient
transform:
  source: seattle-weather
  max_rejected_fraction: 0.05
retention:
  days: 30
  keep_last: 10
  keep: ["data/*"]
about: |
  A block string the modules ignore.
"""


def stage(root: Path, name: str, config: Path) -> subprocess.CompletedProcess[str]:
    """A shipped module run as the orchestrator runs it, with `config` as its config."""
    project = Project(root)
    env = dict(stage_env(project, name), PIPELINE_CONFIG=str(config))
    return subprocess.run([sys.executable, str(root / "modules" / name)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_every_shipped_module_reads_a_yaml_config(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    (root / "config.json").unlink()
    config = root / "config.yaml"
    config.write_text(SHIPPED_YAML)

    retrieved = stage(root, "1.file_retrieval.py", config)
    assert retrieved.returncode == 0, retrieved.stderr
    assert "seattle-weather: downloaded: 46.7 KiB, 1,461 rows, 6 columns" in retrieved.stdout
    transformed = stage(root, "2.transform_data.py", config)
    assert transformed.returncode == 0, transformed.stderr
    assert "1,461 rows in, 1,461 out" in transformed.stdout
    pruned = stage(root, "0.retention_policy.py", config)
    assert pruned.returncode == 10, pruned.stderr
    assert "older than 30 days beyond the newest 10" in pruned.stdout


def test_a_yml_config_is_yaml_too(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    config = root / "config.yml"
    config.write_text("retention: {days: '30'}\n")
    result = stage(root, "0.retention_policy.py", config)
    assert result.returncode == 2
    assert result.stderr == ("0.retention_policy: config.yml: retention.days: "
                             "must be a whole number, 0 or more (got '30')\n")


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("config.yaml", "sources:\n  - id: a\n   url: b\n", "line 3, column 4: "),
    ("config.yaml", "retention: !!python/object:os.system {}\n",
     "line 1, column 12: could not determine a constructor for the tag"),
    ("config.yaml", "- a list\n- not a mapping\n", "the top level must be an object"),
    ("config.yaml", "", "the top level must be an object"),
    ("config.json", "[" * 100_000 + "]" * 100_000, "cannot read it: nested too deep"),
    ("config.yaml", "a: " + "[" * 500 + "]" * 500 + "\n", "cannot read it: nested too deep"),
    ("config.json", '["a list"]', "the top level must be an object"),
])
@pytest.mark.parametrize("module", ["0.retention_policy.py", "1.file_retrieval.py",
                                    "2.transform_data.py"])
def test_a_config_no_module_can_read_is_one_line_and_exit_2(
        tmp_path: Path, module: str, name: str, text: str, problem: str) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO / "modules", root / "modules",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = root / name
    config.write_text(text)
    result = stage(root, module, config)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{Path(module).stem}: {config}: ")
    assert problem in result.stderr


def test_the_shipped_pipeline_runs_from_a_yaml_config(tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    (root / "config.json").unlink()
    (root / "config.yaml").write_text(SHIPPED_YAML)
    first = run(root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert [(m["name"], m["status"]) for m in latest_record(root)["modules"]] == [
        ("1.file_retrieval", "success"), ("2.transform_data", "success"),
        ("0.retention_policy", "skipped")]
    assert (root / "config.yaml").read_text().startswith(SHIPPED_YAML)


def test_a_transform_that_fails_half_way_is_rolled_back_and_the_run_goes_on(
        tmp_path: Path) -> None:
    root = fresh_copy(tmp_path)
    assert run(root).returncode == 0
    data = root / "data and logs" / "data"
    good = (data / "seattle-weather.clean.csv").read_bytes()
    with open(root / "sample_data" / "seattle-weather.csv", "a") as handle:
        handle.write("2016-01-01,0.0,5.6,-2.1,3.2,sun\n")
    (data / "seattle-weather.rejected.csv").mkdir()  # in the way of its second write

    result = run(root)
    assert result.returncode == 0, result.stdout + result.stderr
    record = latest_record(root)
    assert record["status"] == "partial"
    transform = record["modules"][1]
    assert (transform["status"], transform["recovery"]["status"]) == ("recovered", "success")
    assert (data / "seattle-weather.clean.csv").read_bytes() == good
    log = max((root / "data and logs").rglob("workflow_*.log")).read_text()
    assert "restored seattle-weather.clean.csv" in log
