"""Clean the retrieved Seattle weather data: typed columns, ISO dates, no duplicates.

Reads the file that 1.file_retrieval recorded for the source (default
"seattle-weather") and writes, atomically, beside it:

- `<id>.clean.csv`: date, precipitation, temp_max, temp_min, wind, weather;
  one row per day, sorted by date;
- `<id>.rejected.csv`: each row that did not parse, with its line and reason
  (only when there are any: a row is never silently lost);
- `<id>.summary.json`: rows in, rows out, duplicates dropped, rows rejected,
  the date range, and the checksum of the input it was made from.

Before it replaces them, it keeps the last good outputs as `<name>.previous`
(modules/_previous.py), so that its recovery script, modules/rollback.py, can
put them back if it fails half way (a timeout, a full disk).

Settings: "transform": {"source": "seattle-weather", "max_rejected_fraction": 0.05}.
More rejected rows than that fraction fail the module and write nothing: a
source that changed shape should stop the pipeline, not thin out its output.

Exit 0 when it wrote, 10 when the input has not changed since its last output
(or nothing was retrieved yet), 1 when the input cannot be used, 2 on a bad
setting. PIPELINE_DRY_RUN=1 reports and writes nothing; PIPELINE_FORCE=1
transforms an unchanged input again.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import _common as common
import _previous as previous

DEFAULTS: dict[str, Any] = {"source": "seattle-weather", "max_rejected_fraction": 0.05}
COLUMNS = ("date", "precipitation", "temp_max", "temp_min", "wind", "weather")
NUMBERS = ("precipitation", "temp_max", "temp_min", "wind")
WEATHER = {"drizzle", "fog", "rain", "snow", "sun"}
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%d.%m.%Y")
SHOWN_REJECTS = 10


class Unusable(Exception):
    """The input as a whole cannot be transformed."""


def header(name: str) -> str:
    """Normalise a column name: ' Temp-Max ' becomes 'temp_max'."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def parse_date(text: str) -> date:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"date {text!r} is not a date")


def parse_number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text!r} is not a finite number")
    return value


def typed(row: dict[str, str]) -> dict[str, Any]:
    """One clean row, or ValueError saying what is wrong with it."""
    values = {name: (row.get(name) or "").strip() for name in COLUMNS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"empty {', '.join(missing)}")
    clean: dict[str, Any] = {"date": parse_date(values["date"]).isoformat()}
    clean.update({name: parse_number(name, values[name]) for name in NUMBERS})
    clean["weather"] = values["weather"].lower()
    if clean["weather"] not in WEATHER:
        known = ", ".join(sorted(WEATHER))
        raise ValueError(f"weather {values['weather']!r} is not one of {known}")
    if clean["temp_min"] > clean["temp_max"]:
        raise ValueError(f"temp_min {clean['temp_min']} is above temp_max {clean['temp_max']}")
    for name in ("precipitation", "wind"):
        if clean[name] < 0:
            raise ValueError(f"{name} {clean[name]} is negative")
    return clean


@dataclass
class Result:
    rows_in: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[tuple[int, str, list[str]]] = field(default_factory=list)  # line, why, raw

    def date_range(self) -> list[str] | None:
        return [self.rows[0]["date"], self.rows[-1]["date"]] if self.rows else None


def transform(text: str) -> Result:
    reader = csv.reader(io.StringIO(text))
    names = [header(name) for name in next(reader, [])]
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise Unusable(f"no column {', '.join(missing)} (columns: {', '.join(names) or 'none'})")
    result, by_date = Result(), {}
    for raw in reader:
        if not raw:
            continue
        result.rows_in += 1
        line = reader.line_num
        try:
            if len(raw) != len(names):
                raise ValueError(f"{len(raw)} fields, the header has {len(names)}")
            clean = typed(dict(zip(names, raw, strict=True)))
        except ValueError as exc:
            result.rejected.append((line, str(exc), raw))
            continue
        first = by_date.setdefault(clean["date"], (line, clean))
        if first[1] is clean:
            result.rows.append(clean)
        elif first[1] == clean:
            result.duplicates += 1
        else:
            result.rejected.append((line, f"date {clean['date']} is also on line {first[0]}, "
                                          "with other values", raw))
    result.rows.sort(key=lambda row: row["date"])
    return result


def csv_bytes(header_row: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header_row)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def outputs(stem: str) -> list[str]:
    """The files written for one source, in the order they are written: the summary,
    which says what the input was, last."""
    return [f"{stem}.clean.csv", f"{stem}.rejected.csv", f"{stem}.summary.json"]


def write(folder: Path, stem: str, result: Result, summary: dict[str, Any]) -> None:
    clean_name, rejected_name, summary_name = outputs(stem)
    previous.keep(folder, stem, outputs(stem))
    clean = [[row[name] for name in COLUMNS] for row in result.rows]
    common.write_atomic(folder / clean_name, csv_bytes(list(COLUMNS), clean))
    rejected_path = folder / rejected_name
    if result.rejected:
        rows = [[line, why, *raw] for line, why, raw in result.rejected]
        common.write_atomic(rejected_path, csv_bytes(["line", "reason", "row..."], rows))
    else:
        rejected_path.unlink(missing_ok=True)
    common.write_json(folder / summary_name, summary)


def input_file(folder: Path, source: str) -> Path:
    """The file retrieval recorded for `source` in its manifest."""
    entry = common.read_json(folder / "manifest.json", {}).get(source)
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
            or "\0" in entry["file"]:
        return folder / f"{source}.csv"
    return folder / Path(entry["file"]).name


def report(result: Result) -> None:
    for line, why, _ in result.rejected[:SHOWN_REJECTS]:
        print(f"rejected line {line}: {why}")
    if len(result.rejected) > SHOWN_REJECTS:
        print(f"... and {len(result.rejected) - SHOWN_REJECTS} more rejected rows")
    span = result.date_range()
    dates = f"dates {span[0]} to {span[1]}" if span else "no dates"
    print(f"{common.counted(result.rows_in, 'row')} in, {len(result.rows):,} out, "
          f"{result.duplicates:,} duplicates dropped, {len(result.rejected):,} rejected; {dates}")


def known_source(name: str) -> None:
    """`transform.source` must name one of `sources`: a typo is an error, not a skip
    that repeats on every run."""
    sources = common.settings().get("sources")
    ids = [s.get("id") for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []
    if ids and name not in ids:
        raise common.SettingsError(f"{common.config_path().name}: transform.source: {name!r} is "
                                   f"not the id of one of `sources` ({', '.join(map(str, ids))})")


def main() -> int:
    settings = common.section("transform", DEFAULTS)
    known_source(settings["source"])
    folder = common.data_dir()
    source = input_file(folder, settings["source"])
    stem = settings["source"]
    if not source.exists():
        print(f"{source.name}: not retrieved yet, nothing to transform")
        return common.SKIP
    digest = common.sha256_of(source)
    last_summary = common.read_json(folder / f"{stem}.summary.json", {})
    if last_summary.get("input_sha256") == digest and (folder / f"{stem}.clean.csv").exists() \
            and not common.force():
        print(f"{source.name}: unchanged since the transform of run {last_summary.get('run_id')}")
        return common.SKIP
    try:
        result = transform(source.read_text(encoding="utf-8-sig"))
    except (Unusable, UnicodeDecodeError, csv.Error) as exc:
        print(f"{source.name}: cannot transform: {exc}", file=sys.stderr)
        return common.FAILED
    report(result)
    limit = settings["max_rejected_fraction"]
    if not result.rows or len(result.rejected) > limit * result.rows_in:
        print(f"{source.name}: {len(result.rejected)} of {result.rows_in} rows rejected, "
              f"over max_rejected_fraction {limit:g}: nothing written", file=sys.stderr)
        return common.FAILED
    if common.dry_run():
        print("dry run: nothing written")
        return 0
    try:
        write(folder, stem, result, {
            "input": source.name, "input_sha256": digest, "rows_in": result.rows_in,
            "rows_out": len(result.rows), "duplicates_dropped": result.duplicates,
            "rows_rejected": len(result.rejected), "date_range": result.date_range(),
            "run_id": common.run_id()})
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{stem}: cannot write the outputs: {exc.strerror or exc}{where}", file=sys.stderr)
        return common.FAILED
    return 0


if __name__ == "__main__":
    common.run(main)
