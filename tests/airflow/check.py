"""Checks one `airflow dags test` run: every task's state and the DAG's Variable.

    python tests/airflow/check.py DAG_ID EXPECTED_JSON

EXPECTED_JSON: {"run": "success"|"failed", "tasks": {task_id: state, ...},
"variable": true|false, "log": PATH, "absent": [text, ...]}. Runs the `airflow`
next to this interpreter; AIRFLOW_HOME and the DAGs folder come from the
environment. One line per fault and exit 1; "airflow check: ok" and exit 0.
"""

from __future__ import annotations

import json
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


def variable(dag_id: str) -> str | None:
    done = subprocess.run([AIRFLOW, "variables", "get", dag_id], capture_output=True,
                          text=True)
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else None


def faults(dag_id: str, expected: dict) -> list[str]:
    runs = sorted(airflow_json("dags", "list-runs", dag_id), key=lambda r: r["start_date"])
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
    value = variable(dag_id)
    if (value is not None) != expected["variable"]:
        found.append(f"Variable {dag_id!r}: {value!r}, expected {'a date' if expected['variable'] else 'none'}")
    log = Path(expected["log"]).read_text(encoding="utf-8", errors="replace") if expected.get("log") else ""
    found += [f"{expected['log']}: holds {text!r}" for text in expected.get("absent", []) if text in log]
    found += [f"{expected['log']}: lacks {text!r}" for text in expected.get("present", []) if text not in log]
    return found


def main() -> int:
    dag_id, expected = sys.argv[1], json.loads(sys.argv[2])
    found = faults(dag_id, expected)
    for line in found:
        print(f"airflow check: {dag_id}: {line}")
    if not found:
        print(f"airflow check: {dag_id}: ok")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
