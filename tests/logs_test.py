from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from loguru import logger

from pipeline import logs
from pipeline.logs import Masker, RunLog

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| [A-Z]+ +\| [\w.\-]+ \| .*$")


def test_masker_masks_longest_first_and_each_line_of_a_multiline_secret() -> None:
    masker = Masker(["abcd", "abcdefgh", "-----BEGIN KEY-----\nline-two-of-key\n"])
    assert masker("x abcdefgh y abcd z") == "x *** y *** z"
    assert masker("-----BEGIN KEY----- then line-two-of-key") == "*** then ***"


def test_masker_ignores_values_too_short_to_mask_safely() -> None:
    masker = Masker(["abc", "", "  "])
    assert not masker
    assert masker("abc") == "abc"


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "db_password", "MY_SECRET_X", "AWS_API_KEY",
                                  "SSH_PRIVATE_KEY", "PASSWD", "GCP_CREDENTIALS"])
def test_secret_names(name: str) -> None:
    assert logs.secret_values({name: "value1", "HOME": "/root"}, []) == ["value1"]


def test_mask_env_names_any_variable() -> None:
    env = {"DATABASE_URL": "postgres://u:p@h/db", "OTHER": "plain"}
    assert logs.secret_values(env, ["DATABASE_URL"]) == ["postgres://u:p@h/db"]


def test_create_log_never_overwrites(tmp_path: Path) -> None:
    made = [logs.create_log(tmp_path / "logs", "20261123_06h00") for _ in range(3)]
    for _, _, handle in made:
        handle.close()
    assert [run_id for run_id, _, _ in made] == [
        "20261123_06h00", "20261123_06h00_2", "20261123_06h00_3"]
    (tmp_path / "logs" / "workflow_20261123_06h01.json").write_text("{}")  # a record, no log
    run_id, path, handle = logs.create_log(tmp_path / "logs", "20261123_06h01")
    handle.close()
    assert run_id == "20261123_06h01_2"


def test_every_line_of_the_file_has_the_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    handle = open(tmp_path / "x.log", "x", encoding="utf-8")
    with RunLog(timezone.utc, Masker(["s3cr3t-value"])) as runlog:
        runlog.attach_file(handle)
        logger.info("one {brace} line")
        logger.bind(module="2.transform").warning("two\nlines with s3cr3t-value")
        logger.debug("debug only in the file")
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("unexpected")
        runlog.output("1.fetch", "stdout", "out 1\n::add-mask::hunter2hunter2\nhunter2hunter2 here\n")
    text = (tmp_path / "x.log").read_text()
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines), text
    assert "| INFO     | orchestrator | one {brace} line" in lines[0]
    assert lines[1].endswith("| WARNING  | 2.transform | two")
    assert lines[2].endswith("| WARNING  | 2.transform | lines with ***")
    assert any(line.endswith("| ERROR    | orchestrator | ValueError: bad") for line in lines)
    assert any("| ERROR    | orchestrator | Traceback (most recent call last):" in ln for ln in lines)
    assert lines[-2].endswith("| INFO     | 1.fetch | out 1")
    assert lines[-1].endswith("| INFO     | 1.fetch | *** here")
    assert "hunter2" not in text and "s3cr3t" not in text
    console = capsys.readouterr().out
    assert "debug only in the file" not in console
    assert "*** here" in console and "hunter2" not in console


def test_times_are_in_the_configured_zone(tmp_path: Path) -> None:
    from pipeline.config import zone

    handle = open(tmp_path / "x.log", "x", encoding="utf-8")
    tz = zone("Asia/Kolkata")
    with RunLog(tz, Masker(), verbose=True) as runlog:
        runlog.attach_file(handle)
        runlog._console = io.StringIO()
        logger.info("now")
    stamp = (tmp_path / "x.log").read_text()[:23]
    logged = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=tz)
    assert abs((datetime.now(timezone.utc) - logged).total_seconds()) < 3600
