"""Run ids: claimed once, by whichever engine runs."""

from __future__ import annotations

from pathlib import Path

from gitcron import runid


def test_a_claimed_id_is_never_taken_again(tmp_path: Path) -> None:
    made = [runid.claim(tmp_path / "logs", "20261123_06h00") for _ in range(3)]
    for _, _, handle in made:
        handle.close()
    assert [run_id for run_id, _, _ in made] == [
        "20261123_06h00", "20261123_06h00_2", "20261123_06h00_3"]
    (tmp_path / "logs" / "workflow_20261123_06h01.json").write_text("{}")  # a record, no log
    run_id, path, handle = runid.claim(tmp_path / "logs", "20261123_06h01")
    handle.close()
    assert run_id == "20261123_06h01_2"
