"""Checks one DAG run of `airflow dags test` or of a real deployment.

    python tests/airflow/check.py DAG_ID EXPECTED_JSON

EXPECTED_JSON: {"run": "success"|"failed", "tasks": {task_id: state, ...},
"project": PATH (its newest run record is the run's), "record": {"status": ...,
"modules": {name: status}}, "present": [text, ...], "absent": [text, ...]
(in the run's log), "secrets": [text, ...] (in no file under AIRFLOW_HOME/logs
nor in the run's log and record)}. Runs the `airflow` next to this interpreter;
AIRFLOW_HOME and the DAGs folder come from the environment. One line per fault
and exit 1; "airflow check: ok" and exit 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_json(*args: str) -> list[dict]:
    """The JSON list an `airflow ... -o json` prints (warnings may come first)."""
    out = subprocess.run([AIRFLOW, *args, "-o", "json"], capture_output=True, text=True,
                         check=True).stdout
    for line in reversed(out.splitlines()):
        if line.startswith("["):
            return json.loads(line)
    raise SystemExit(f"airflow {' '.join(args)}: no JSON in its output")


def newest_record(project: Path) -> tuple[dict, str]:
    # Either log_layout: `workflow_<id>.json` in log_dir, or in its YYYY/MM/DD/ folders.
    paths = sorted((project / "data and logs").rglob("workflow_*.json"),
                   key=lambda p: p.stat().st_mtime_ns)
    if not paths:
        return {}, ""
    record = json.loads(paths[-1].read_text())
    log = paths[-1].with_suffix(".log")
    return record, log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


def task_faults(dag_id: str, expected: dict) -> list[str]:
    runs = sorted(airflow_json("dags", "list-runs", dag_id), key=lambda r: r["start_date"] or "")
    if not runs:
        return [f"{dag_id}: no DAG run"]
    run = runs[-1]
    found = [] if run["state"] == expected["run"] else [
        f"DAG run {run['run_id']}: state {run['state']}, expected {expected['run']}"]
    states = {t["task_id"]: t["state"]
              for t in airflow_json("tasks", "states-for-dag-run", dag_id, run["run_id"])}
    for task, state in expected["tasks"].items():
        if states.get(task) != state:
            found.append(f"task {task}: state {states.get(task)}, expected {state}")
    extra = sorted(set(states) - set(expected["tasks"]))
    if extra:
        found.append(f"tasks not checked: {', '.join(extra)}")
    return found


def record_faults(expected: dict) -> list[str]:
    record, log = newest_record(Path(expected["project"]))
    if not record:
        return [f"{expected['project']}: no run record"]
    found = []
    want = expected.get("record", {})
    if "status" in want and record["status"] != want["status"]:
        found.append(f"record {record['run_id']}: status {record['status']}, expected "
                     f"{want['status']}")
    statuses = {m["name"]: m["status"] for m in record["modules"]}
    if "modules" in want and statuses != want["modules"]:
        found.append(f"record {record['run_id']}: modules {statuses}, expected {want['modules']}")
    found += [f"run log: holds {text!r}" for text in expected.get("absent", []) if text in log]
    found += [f"run log: lacks {text!r}" for text in expected.get("present", []) if text not in log]
    texts = {"run log": log, "run record": json.dumps(record)}
    return found + secret_faults(expected.get("secrets", []), texts)


def secret_faults(secrets: list[str], texts: dict[str, str]) -> list[str]:
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    for path in logs.rglob("*") if logs.exists() else ():
        if path.is_file():
            texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    return [f"{where}: holds the secret {secret[:2]}..." for where, text in texts.items()
            for secret in secrets if secret in text]


def main() -> int:
    dag_id, expected = sys.argv[1], json.loads(sys.argv[2])
    found = task_faults(dag_id, expected) + record_faults(expected)
    for line in found:
        print(f"airflow check: {dag_id}: {line}")
    if not found:
        print(f"airflow check: {dag_id}: ok")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
