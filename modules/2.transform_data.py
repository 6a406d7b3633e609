"""Clean the retrieved weather data: typed columns, ISO dates, no duplicates.

Writes `<id>.clean.csv` and `<id>.summary.json` beside the input. Rows that
do not parse are counted and logged, never silently lost. Exit 10 when the
input has not changed since the last output.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import date, datetime

import _common as common

INPUT_ID = "seattle-weather"
COLUMNS = {"date": "date", "precipitation": float, "temp_max": float, "temp_min": float,
           "wind": float, "weather": str}
DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%d.%m.%Y")


def header(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def parse_date(text: str) -> date:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise ValueError(f"unknown date {text!r}")


def typed(row: dict) -> dict:
    out = {}
    for name, kind in COLUMNS.items():
        value = (row.get(name) or "").strip()
        if kind == "date":
            out[name] = parse_date(value).isoformat()
        elif kind is float:
            out[name] = float(value)
        else:
            if not value:
                raise ValueError(f"empty {name}")
            out[name] = value.lower()
    return out


def transform(text: str) -> tuple[list[dict], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    reader.fieldnames = [header(n) for n in reader.fieldnames or []]
    rows, rejected, seen = [], [], set()
    for number, row in enumerate(reader, start=2):
        try:
            clean = typed(row)
        except (ValueError, TypeError) as exc:
            rejected.append(f"line {number}: {exc}")
            continue
        key = tuple(clean.values())
        if key not in seen:
            seen.add(key)
            rows.append(clean)
    return rows, rejected


def main() -> int:
    folder = common.data_dir()
    source = folder / f"{INPUT_ID}.csv"
    if not source.exists():
        print(f"{source.name}: not retrieved yet, nothing to transform")
        return common.SKIP
    digest = common.sha256_of(source)
    summary_path = folder / f"{INPUT_ID}.summary.json"
    summary = common.read_json(summary_path, {})
    output = folder / f"{INPUT_ID}.clean.csv"
    if summary.get("input_sha256") == digest and output.exists() and not common.force():
        print(f"{source.name}: unchanged since the last transform")
        return common.SKIP
    rows, rejected = transform(source.read_text(encoding="utf-8"))
    for reason in rejected:
        print(f"rejected {reason}", file=sys.stderr)
    dates = [r["date"] for r in rows]
    summary = {"input": source.name, "input_sha256": digest, "rows_out": len(rows),
               "rows_rejected": len(rejected),
               "date_range": [min(dates), max(dates)] if dates else None}
    print(f"{len(rows)} rows out, {len(rejected)} rejected, dates {summary['date_range']}")
    if common.dry_run():
        return 0
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    common.write_atomic(output, buffer.getvalue().encode())
    common.write_json(summary_path, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
