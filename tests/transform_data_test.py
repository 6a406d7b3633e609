"""modules/2.transform_data.py on the shipped data and on messy inputs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

from conftest import REPO, Project, run_stage, stage_command

NAME = "2.transform_data.py"
HEADER = "date,precipitation,temp_max,temp_min,wind,weather\n"
MESSY = (
    "\ufeff Date ,Precipitation,Temp-Max,TEMP MIN,wind,Weather\n"
    "2012/01/02,10.9,10.6,2.8,4.5,Rain\n"
    "2012-01-01,0.0,12.8,5.0,4.7,drizzle\n"
    "\n"
    "2012-01-01,0.0,12.8,5.0,4.7,drizzle\n"
    "03.01.2012,0.8,11.7,7.2,2.3,rain\n"
    "2012-01-03,9.9,11.7,7.2,2.3,rain\n"
    "2012-01-04,lots,5,1,2,rain\n"
    "2012-01-05,nan,5,1,2,rain\n"
    "2012-01-06,1,5,1,2,hail\n"
    "2012-01-07,1,1,5,2,rain\n"
    "2012-01-08,-1,5,1,2,rain\n"
    "2012-13-09,1,5,1,2,rain\n"
    "2012-01-10,1,5,1,2\n"
    "2012-01-11,,5,1,2,sun\n"
)


def transform(project: Project, **options: Any) -> subprocess.CompletedProcess[str]:
    return run_stage(project, NAME, **options)


def folder(project: Project) -> Path:
    return project.log_dir / "data"


def given(project: Project, text: str, max_rejected: float | None = None) -> Path:
    project.config({} if max_rejected is None
                   else {"transform": {"max_rejected_fraction": max_rejected}})
    path = folder(project) / "seattle-weather.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def summary(project: Project) -> dict[str, Any]:
    return json.loads((folder(project) / "seattle-weather.summary.json").read_text())


def clean_rows(project: Project) -> list[list[str]]:
    with open(folder(project) / "seattle-weather.clean.csv", newline="") as handle:
        return list(csv.reader(handle))


def test_the_shipped_data_comes_out_typed_and_whole(project: Project) -> None:
    given(project, (REPO / "sample_data" / "seattle-weather.csv").read_text())
    result = transform(project)
    assert result.returncode == 0, result.stderr
    assert "1,461 rows in, 1,461 out, 0 duplicates dropped, 0 rejected; " \
           "dates 2012-01-01 to 2015-12-31" in result.stdout
    rows = clean_rows(project)
    assert rows[0] == HEADER.strip().split(",")
    assert rows[1] == ["2012-01-01", "0.0", "12.8", "5.0", "4.7", "drizzle"]
    assert len(rows) == 1462
    facts = summary(project)
    assert {k: facts[k] for k in ("rows_in", "rows_out", "rows_rejected", "date_range")} == {
        "rows_in": 1461, "rows_out": 1461, "rows_rejected": 0,
        "date_range": ["2012-01-01", "2015-12-31"]}
    assert not (folder(project) / "seattle-weather.rejected.csv").exists()


def test_messy_input_is_normalised_deduplicated_and_rejects_are_kept(project: Project) -> None:
    given(project, MESSY, max_rejected=1.0)
    result = transform(project)
    assert result.returncode == 0, result.stderr
    assert clean_rows(project) == [
        HEADER.strip().split(","),
        ["2012-01-01", "0.0", "12.8", "5.0", "4.7", "drizzle"],
        ["2012-01-02", "10.9", "10.6", "2.8", "4.5", "rain"],
        ["2012-01-03", "0.8", "11.7", "7.2", "2.3", "rain"],
    ]
    facts = summary(project)
    assert (facts["rows_in"], facts["rows_out"], facts["duplicates_dropped"],
            facts["rows_rejected"]) == (13, 3, 1, 9)
    assert facts["date_range"] == ["2012-01-01", "2012-01-03"]
    with open(folder(project) / "seattle-weather.rejected.csv", newline="") as handle:
        rejected = [(row[0], row[1]) for row in csv.reader(handle)][1:]
    assert rejected == [
        ("7", "date 2012-01-03 is also on line 6, with other values"),
        ("8", "precipitation 'lots' is not a number"),
        ("9", "precipitation 'nan' is not a finite number"),
        ("10", "weather 'hail' is not one of drizzle, fog, rain, snow, sun"),
        ("11", "temp_min 5.0 is above temp_max 1.0"),
        ("12", "precipitation -1.0 is negative"),
        ("13", "date '2012-13-09' is not a date"),
        ("14", "5 fields, the header has 6"),
        ("15", "empty precipitation"),
    ]
    assert "rejected line 8: precipitation 'lots' is not a number" in result.stdout


def test_only_the_first_rejects_are_printed(project: Project) -> None:
    given(project, HEADER + "2012-01-01,x,1,1,1,sun\n" * 25 + "2012-01-02,0,1,1,1,sun\n",
          max_rejected=1.0)
    result = transform(project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("rejected line") == 10
    assert "... and 15 more rejected rows" in result.stdout
    assert summary(project)["rows_rejected"] == 25


def test_too_many_rejects_fail_and_keep_the_last_output(project: Project) -> None:
    path = given(project, HEADER + "2012-01-01,0,1,1,1,sun\n")
    assert transform(project).returncode == 0
    before = {p.name: p.read_bytes() for p in folder(project).iterdir()}
    path.write_text(HEADER + "2012-01-01,0,1,1,1,sun\n" + "2012-01-02,?,1,1,1,sun\n")

    result = transform(project)
    assert result.returncode == 1
    assert "1 of 2 rows rejected, over max_rejected_fraction 0.05: nothing written" \
        in result.stderr
    after = {p.name: p.read_bytes() for p in folder(project).iterdir()}
    assert after == {**before, "seattle-weather.csv": path.read_bytes()}


def test_a_missing_column_fails_with_one_line(project: Project) -> None:
    given(project, "date,precipitation,temp_max,temp_min,weather\n2012-01-01,0,1,1,sun\n")
    result = transform(project)
    assert result.returncode == 1
    assert result.stderr.strip() == ("seattle-weather.csv: cannot transform: no column wind "
                                     "(columns: date, precipitation, temp_max, temp_min, weather)")
    assert not (folder(project) / "seattle-weather.clean.csv").exists()


def test_an_input_with_no_rows_fails(project: Project) -> None:
    given(project, HEADER)
    result = transform(project)
    assert result.returncode == 1
    assert "0 of 0 rows rejected" in result.stderr


def test_an_unchanged_input_is_a_skip_until_forced(project: Project) -> None:
    given(project, HEADER + "2012-01-01,0,1,1,1,sun\n")
    assert transform(project).returncode == 0
    output = folder(project) / "seattle-weather.clean.csv"
    output.write_text("edited by hand\n")

    unchanged = transform(project)
    assert unchanged.returncode == 10
    assert "unchanged since the transform of run 20261123_06h00" in unchanged.stdout
    assert output.read_text() == "edited by hand\n"

    forced = transform(project, force=True, run_id="20261124_06h00")
    assert forced.returncode == 0, forced.stderr
    assert output.read_text().startswith(HEADER)
    assert summary(project)["run_id"] == "20261124_06h00"


def test_a_lost_output_is_made_again(project: Project) -> None:
    given(project, HEADER + "2012-01-01,0,1,1,1,sun\n")
    assert transform(project).returncode == 0
    (folder(project) / "seattle-weather.clean.csv").unlink()
    assert transform(project).returncode == 0
    assert (folder(project) / "seattle-weather.clean.csv").exists()


def test_a_clean_input_removes_the_last_rejects_file(project: Project) -> None:
    path = given(project, HEADER + "2012-01-01,0,1,1,1,sun\n2012-01-02,?,1,1,1,sun\n", 1.0)
    assert transform(project).returncode == 0
    assert (folder(project) / "seattle-weather.rejected.csv").exists()
    path.write_text(HEADER + "2012-01-01,0,1,1,1,sun\n")
    assert transform(project).returncode == 0
    assert not (folder(project) / "seattle-weather.rejected.csv").exists()


def test_dry_run_reports_and_writes_nothing(project: Project) -> None:
    given(project, MESSY, max_rejected=1.0)
    result = transform(project, dry_run=True)
    assert result.returncode == 0, result.stderr
    assert "13 rows in, 3 out, 1 duplicates dropped, 9 rejected" in result.stdout
    assert sorted(p.name for p in folder(project).iterdir()) == ["seattle-weather.csv"]


def test_nothing_retrieved_yet_is_a_skip(project: Project) -> None:
    project.config({})
    result = transform(project)
    assert result.returncode == 10
    assert "seattle-weather.csv: not retrieved yet" in result.stdout


def test_the_input_is_the_file_retrieval_recorded(project: Project) -> None:
    project.config(transform={"source": "weather"})
    folder(project).mkdir(parents=True)
    (folder(project) / "manifest.json").write_text(json.dumps({"weather": {"file": "w.csv"}}))
    (folder(project) / "w.csv").write_text(HEADER + "2012-01-01,0,1,1,1,sun\n")
    result = transform(project)
    assert result.returncode == 0, result.stderr
    assert (folder(project) / "weather.clean.csv").exists()
    assert summary_of(project, "weather")["input"] == "w.csv"


def summary_of(project: Project, stem: str) -> dict[str, Any]:
    return json.loads((folder(project) / f"{stem}.summary.json").read_text())


def test_a_bad_setting_is_one_line_and_exit_2(project: Project) -> None:
    project.config(transform={"max_rejected_fraction": "5%"})
    result = transform(project)
    assert result.returncode == 2
    assert result.stderr.strip() == ("2.transform_data: config.json: "
                                     "transform.max_rejected_fraction: must be a number, "
                                     "0 or more (got '5%')")


def test_run_by_hand_without_the_orchestrator_it_says_so(project: Project) -> None:
    project.config({})
    command = stage_command(project, NAME)
    result = subprocess.run(command, cwd=project.root, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.strip() == ("2.transform_data: PIPELINE_CONFIG is not set: "
                                     "run modules through orchestrator.py")
