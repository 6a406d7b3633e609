"""`metrics_file`: the run as Prometheus metrics, in node_exporter's textfile format.

node_exporter's textfile collector reads every `*.prom` file of its folder at
each scrape; a file read while half-written would be a wrong sample, so the
file is replaced whole (a temporary file whose name does not end in `.prom`,
then a rename). Every value comes from the run record, already masked.

`pipeline_last_success_timestamp_seconds` moves only with a run that ends
`success` and completes the pipeline (the runs that set `last_run_date`): a
failed run, a dry run, a backfill or a narrowed run keeps the value the file
had, so that `time() - pipeline_last_success_timestamp_seconds` alerts on the
real age of the last good run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitcron import config as cfg
from gitcron.records import Record, moment, records_newest_first

LAST_SUCCESS = "pipeline_last_success_timestamp_seconds"
RUN_STATUSES = ("success", "partial", "failed", "interrupted")
# name, help: each a gauge (exposition format 0.0.4, prometheus.io/docs/instrumenting).
METRICS = {
    "pipeline_last_run_timestamp_seconds": "When the newest run finished, in Unix time.",
    LAST_SUCCESS: "When the newest run that ended success and completed the pipeline "
                  "finished, in Unix time; 0 when none is known.",
    "pipeline_last_run_status": "1 for the newest run's status, 0 for the others.",
    "pipeline_run_duration_seconds": "How long the newest run took.",
    "pipeline_module_duration_seconds": "How long each module of the newest run took, "
                                        "retries included.",
    "pipeline_module_exit_code": "Each module's exit code in the newest run (negative: the "
                                 "signal that killed it).",
}


def completes_pipeline(record: Record) -> bool:
    """A success that counts as the pipeline's own: a whole run or a resumed one, not
    a dry run, backfill or narrowed run (the rule of `last_run_date`)."""
    if record.get("status") != "success" or record.get("dry_run") or record.get("backfill"):
        return False
    selection = record.get("selection")
    return not selection or (isinstance(selection, dict) and bool(selection.get("resume_of")))


def render(record: Record, pipeline: str, last_success: float) -> str:
    """The textfile for the run `record`; `last_success` is the value to keep when
    this run does not move it."""
    finished = _timestamp(record.get("finished")) or _timestamp(record.get("started")) or 0.0
    if completes_pipeline(record):
        last_success = finished
    labels = {"pipeline": pipeline}
    samples: dict[str, list[tuple[dict[str, str], float]]] = {
        "pipeline_last_run_timestamp_seconds": [(labels, finished)],
        LAST_SUCCESS: [(labels, last_success)],
        "pipeline_last_run_status": [(dict(labels, status=status),
                                      1.0 if record.get("status") == status else 0.0)
                                     for status in RUN_STATUSES],
        "pipeline_run_duration_seconds": list(_present(labels, record.get("duration_seconds"))),
        "pipeline_module_duration_seconds": [],
        "pipeline_module_exit_code": [],
    }
    for module in record.get("modules") or []:
        if not isinstance(module, dict) or not isinstance(module.get("name"), str):
            continue
        own = dict(labels, module=module["name"])
        samples["pipeline_module_duration_seconds"] += _present(own,
                                                                module.get("duration_seconds"))
        samples["pipeline_module_exit_code"] += _present(own, module.get("exit_code"))
    return "".join(_family(name, samples[name]) for name in METRICS)


def _present(labels: dict[str, str], value: Any) -> Iterator[tuple[dict[str, str], float]]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        yield labels, float(value)


def _family(name: str, samples: list[tuple[dict[str, str], float]]) -> str:
    lines = [f"# HELP {name} {METRICS[name]}", f"# TYPE {name} gauge"]
    lines += [f"{name}{{{_labels(labels)}}} {_number(value)}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())


def _escape(value: str) -> str:
    """A label value as the exposition format wants it: \\, \" and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _timestamp(value: Any) -> float | None:
    return when.timestamp() if (when := moment(value)) is not None else None


LAST_SUCCESS_LINE = re.compile(rf"^{LAST_SUCCESS}{{[^\n]*}} (\S+)$", re.MULTILINE)


def previous_success(path: Path, log_dir: Path) -> float:
    """The last success the file holds; when there is no file yet (the first run
    that writes one), the newest record that completes the pipeline; else 0."""
    try:
        found = LAST_SUCCESS_LINE.search(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        found = None
    if found is not None:
        try:
            value = float(found.group(1))
            if math.isfinite(value):
                return value
        except ValueError:
            pass
    for _, record in records_newest_first(log_dir):
        if completes_pipeline(record):
            return _timestamp(record.get("finished")) or 0.0
    return 0.0


def write(path: Path, record: Record, pipeline: str, log_dir: Path) -> None:
    """Replace `path` whole with the metrics of `record`. OSError when it cannot."""
    previous = 0.0 if completes_pipeline(record) else previous_success(path, log_dir)
    cfg.write_atomic(path, render(record, pipeline, previous))
