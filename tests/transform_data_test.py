"""modules/2.transform_data.py on the shipped data and on messy inputs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project, committed, run_stage, stage_command

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


# ---------------------------------------------------------------- the rollback

ROLLBACK = "rollback.py"
GOOD = HEADER + "2012-01-01,0.0,12.8,5.0,4.7,drizzle\n2012-01-02,10.9,10.6,2.8,4.5,rain\n"
RUN_A, RUN_B = "20261123_06h00", "20261124_06h00"


def roll_back(project: Project, run_id: str = RUN_B, code: str = "1",
              **options: Any) -> subprocess.CompletedProcess[str]:
    """The recovery script, with the environment the orchestrator gives it."""
    return run_stage(project, ROLLBACK, run_id=run_id, PIPELINE_FAILED_MODULE="2.transform_data",
                     PIPELINE_FAILED_EXIT_CODE=code, **options)


def outputs(project: Project) -> dict[str, bytes]:
    """The transform's outputs as they are now (not the kept previous ones)."""
    return {path.name: path.read_bytes() for path in folder(project).glob("seattle-weather.*")
            if path.is_file() and path.suffix != ".previous" and path.name != "seattle-weather.csv"
            and not path.name.endswith(".previous.json")}


def test_a_transform_that_failed_half_way_is_rolled_back(project: Project) -> None:
    given(project, GOOD)
    assert transform(project, run_id=RUN_A).returncode == 0
    good = outputs(project)
    given(project, GOOD + "2012-01-03,0.8,11.7,7.2,2.3,rain\n")
    # A folder where the rejects file would be: the run fails after the clean file.
    (folder(project) / "seattle-weather.rejected.csv").mkdir()

    failed = transform(project, run_id=RUN_B)
    assert failed.returncode == 1
    assert failed.stderr.startswith("seattle-weather: cannot write the outputs: Is a directory")
    assert outputs(project)["seattle-weather.clean.csv"] != good["seattle-weather.clean.csv"]

    result = roll_back(project, code="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "restored seattle-weather.clean.csv\nrestored seattle-weather.summary.json\n"
        f"2.transform_data failed (1): restored the outputs it replaced in run {RUN_B} "
        "(1 set)\n")
    assert outputs(project) == good
    assert (folder(project) / "seattle-weather.rejected.csv").is_dir()


def test_outputs_a_run_added_are_removed_by_its_rollback(project: Project) -> None:
    given(project, GOOD)
    assert transform(project, run_id=RUN_A).returncode == 0
    good = outputs(project)
    given(project, MESSY, max_rejected=0.9)
    assert transform(project, run_id=RUN_B).returncode == 0  # then, say, it timed out
    assert "seattle-weather.rejected.csv" in outputs(project)

    result = roll_back(project, code="timeout")
    assert result.returncode == 0, result.stderr
    assert "removed seattle-weather.rejected.csv (there was none before)" in result.stdout
    assert outputs(project) == good
    assert summary(project)["run_id"] == RUN_A

    again = transform(project, run_id="20261125_06h00")
    assert again.returncode == 0, again.stderr  # the input is not the one of the outputs
    assert summary(project)["run_id"] == "20261125_06h00"


def test_a_first_transform_that_failed_leaves_no_outputs(project: Project) -> None:
    given(project, GOOD)
    (folder(project) / "seattle-weather.rejected.csv").mkdir()
    assert transform(project, run_id=RUN_B).returncode == 1
    assert "seattle-weather.clean.csv" in outputs(project)
    result = roll_back(project)
    assert result.returncode == 0, result.stderr
    assert outputs(project) == {}


def test_a_failure_that_replaced_nothing_leaves_the_outputs(project: Project) -> None:
    given(project, GOOD)
    assert transform(project, run_id=RUN_A).returncode == 0
    good = outputs(project)
    given(project, "no,columns\n1,2\n")
    assert transform(project, run_id=RUN_B).returncode == 1
    result = roll_back(project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("2.transform_data failed (1) and replaced no outputs in run "
                             f"{RUN_B}: the last good outputs stand\n")
    assert outputs(project) == good


def test_another_module_of_the_run_is_not_rolled_back(project: Project) -> None:
    given(project, GOOD)
    assert transform(project, run_id=RUN_B).returncode == 0
    result = run_stage(project, ROLLBACK, run_id=RUN_B, PIPELINE_FAILED_MODULE="3.load",
                       PIPELINE_FAILED_EXIT_CODE="signal 9")
    assert result.returncode == 0, result.stderr
    assert "3.load failed (signal 9) and replaced no outputs" in result.stdout
    assert "seattle-weather.clean.csv" in outputs(project)


def test_a_dry_run_rollback_says_what_it_would_do(project: Project) -> None:
    given(project, GOOD)
    assert transform(project, run_id=RUN_A).returncode == 0
    given(project, MESSY, max_rejected=0.9)
    assert transform(project, run_id=RUN_B).returncode == 0
    before = outputs(project)
    result = roll_back(project, dry_run=True)
    assert result.returncode == 0, result.stderr
    assert "would restore seattle-weather.clean.csv\n" in result.stdout
    assert "would remove seattle-weather.rejected.csv (there was none before)" in result.stdout
    assert outputs(project) == before


def test_a_lost_previous_copy_fails_the_rollback_in_one_line(project: Project) -> None:
    given(project, GOOD)
    assert transform(project, run_id=RUN_A).returncode == 0
    given(project, MESSY, max_rejected=0.9)
    assert transform(project, run_id=RUN_B).returncode == 0
    (folder(project) / "seattle-weather.clean.csv.previous").unlink()
    result = roll_back(project)
    assert result.returncode == 1
    assert result.stderr == ("cannot roll back 2.transform_data: seattle-weather.clean.csv."
                             "previous is missing: cannot restore seattle-weather.clean.csv\n")


def test_the_rollback_needs_the_orchestrators_environment(project: Project) -> None:
    given(project, GOOD)
    result = run_stage(project, ROLLBACK)
    assert result.returncode == 2
    assert result.stderr == ("rollback: PIPELINE_FAILED_MODULE is not set: "
                             "run modules through orchestrator.py\n")


def test_the_shipped_config_names_the_rollback_for_the_transform() -> None:
    config = json.loads(committed("config.json"))
    entry = next(m for m in config["modules"] if isinstance(m, dict)
                 and m["path"] == "modules/2.transform_data.py")
    assert entry["on_failure"] == "modules/rollback.py"
    assert (REPO / entry["on_failure"]).is_file()


@pytest.mark.parametrize(("state", "problem"), [
    ("[1, 2]", "not an object"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON (nested too deep)"),
    (None, "cannot read it: Is a directory"),
])
@pytest.mark.parametrize("stage", [NAME, "1.file_retrieval.py"])
def test_a_broken_manifest_is_one_line_and_exit_2(project: Project, stage: str,
                                                  state: str | None, problem: str) -> None:
    given(project, GOOD)
    manifest = folder(project) / "manifest.json"
    if state is None:
        manifest.mkdir()
    else:
        manifest.write_text(state)
    result = run_stage(project, stage)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"{Path(stage).stem}: {manifest}: {problem}; "
                             "move it away to start afresh\n"
                             if state is not None else
                             f"{Path(stage).stem}: {manifest}: {problem}\n")


def test_a_source_that_is_not_among_the_sources_is_a_bad_setting(project: Project) -> None:
    project.config(sources=[{"id": "seattle-weather", "url": "x.csv", "format": "csv"}],
                   transform={"source": "nope"})
    result = run_stage(project, "2.transform_data.py")
    assert result.returncode == 2
    assert result.stderr.strip() == ("2.transform_data: config.json: transform.source: 'nope' is "
                                     "not the id of one of `sources` (seattle-weather)")
