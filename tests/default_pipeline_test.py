"""The shipped pipeline, as a fresh clone runs it: offline, on the bundled data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def fresh_copy(tmp_path: Path) -> Path:
    root = tmp_path / "fresh clone"
    root.mkdir()
    for name in ("orchestrator.py", "config.json"):
        shutil.copy(REPO / name, root / name)
    for folder in ("pipeline", "modules", "sample_data"):
        shutil.copytree(REPO / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "orchestrator.py", "--no-push"], cwd=root,
                          capture_output=True, text=True, timeout=120)


def latest_record(root: Path) -> dict:
    records = [json.loads(p.read_text()) for p in (root / "data and logs").glob("workflow_*.json")]
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
    log = next((root / "data and logs").glob("workflow_*.log")).read_text()
    assert "ERROR    | 1.file_retrieval | " in log
    assert "seattle-weather: failed: no such file: " in log
    assert "last_run_date" not in json.loads((root / "config.json").read_text())
