"""The pipeline as an Airflow DAG: copy this file into your DAGs folder, or
point a Git DAG bundle at this repository (docs/airflow.md).

Check it with `python dags/pipeline_dag.py`: Airflow itself only says
"failed to parse".
"""

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent  # the folder of config.json
sys.path.insert(0, str(PROJECT))

from gitcron.airflow import dag_from_config  # noqa: E402  (needs PROJECT on sys.path)

dag = dag_from_config(PROJECT / "config.json")

if __name__ == "__main__":
    print(f"{dag.dag_id}: {', '.join(task.task_id for task in dag.tasks)}")
