"""`vidgn summarize`: a table of several runs' test summaries that never hides a missing, broken or
partial run, and exits non-zero when there was one."""
from __future__ import annotations

import json

import yaml

from vidgn.cli import main


def _summary(top1: float, *, num_videos: int = 100, left_out: int = 0, in_list: int | None = None,
             **extra) -> dict:
    """A test_summary.json as `vidgn test` writes it (vidgn.evaluation.report.write_summary)."""
    return {"clip_top1": top1 - 5.0, "clip_top5": 90.0, "video_top1": top1, "video_top5": 95.5,
            "mean_class_accuracy": top1 - 1.0, "num_views": 30 * num_videos, "num_videos": num_videos,
            "views_per_video": {"min": 30, "max": 30}, "num_videos_left_out": left_out,
            "left_out": [{"path": f"v{i}.mp4", "reason": "cannot open"} for i in range(left_out)],
            "split": "test", "num_videos_in_list": num_videos + left_out if in_list is None else in_list,
            "checkpoint": "best.ckpt", **extra}


def _run_dir(tmp_path, name: str, summary: dict | str | None, norm: str = "gn"):
    d = tmp_path / name
    d.mkdir()
    config = {"model": {"network": {"init_args": {"norm": norm}}},
              "data": {"num_frames": 32, "sampling_rate": 2, "clips_per_gpu": 8}}
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    if isinstance(summary, dict):
        (d / "test_summary.json").write_text(json.dumps(summary, indent=2))
    elif isinstance(summary, str):
        (d / "test_summary.json").write_text(summary)
    return d


def _summarize(capsys, *runs):
    status = main(["summarize", *map(str, runs)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _table_rows(out: str) -> dict[str, list[str]]:
    """{run cell: cells} of the markdown table in `out`."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| run |"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def test_complete_runs_give_a_table_and_exit_0(tmp_path, capsys):
    a = _run_dir(tmp_path, "gn_run", _summary(70.0, left_out=2), norm="gn")
    b = _run_dir(tmp_path, "bn_run", _summary(68.25, complete=True, max_bad_fraction=0.05), norm="bn")
    status, out, _ = _summarize(capsys, a, b)
    assert status == 0
    rows = _table_rows(out)
    assert rows["gn_run"] == ["gn_run", "gn", "32x2", "8", "65.0", "90.0", "70.0", "95.5", "69.0", "100", "2"]
    assert rows["bn_run"][:2] == ["bn_run", "bn"] and rows["bn_run"][6] == "68.2"
    assert "PARTIAL" not in out and "not comparable" not in out


def test_a_missing_summary_is_a_marked_row_not_a_failure(tmp_path, capsys):
    a = _run_dir(tmp_path, "done", _summary(70.0))
    missing = _run_dir(tmp_path, "not_tested", None)
    b = _run_dir(tmp_path, "done2", _summary(60.0))
    status, out, _ = _summarize(capsys, a, missing, b)
    assert status != 0
    rows = _table_rows(out)
    # The other runs are in the table, with their numbers, in the order given.
    assert list(rows) == ["done", "not_tested", "done2"]
    assert rows["done"][6] == "70.0" and rows["done2"][6] == "60.0"
    # The missing one is a visible row saying what is missing and what to run.
    assert "no test_summary.json" in " ".join(rows["not_tested"])
    assert "vidgn test" in out


def test_a_broken_summary_names_the_file_and_the_parse_error(tmp_path, capsys):
    a = _run_dir(tmp_path, "done", _summary(70.0))
    broken = _run_dir(tmp_path, "broken", '{"video_top1": 70.0,\n "num_videos": }')
    status, out, err = _summarize(capsys, a, broken)
    assert status != 0
    rows = _table_rows(out)
    assert rows["done"][6] == "70.0"
    assert "broken" in rows
    text = out + err
    assert str(broken / "test_summary.json") in text
    assert "line 2" in text  # json's own message: where the parse failed


def test_a_partial_run_is_flagged_and_exits_non_zero(tmp_path, capsys):
    a = _run_dir(tmp_path, "full", _summary(70.0, left_out=1, complete=True, max_bad_fraction=0.05))
    p = _run_dir(tmp_path, "holey", _summary(75.0, num_videos=80, left_out=20, complete=False,
                                             max_bad_fraction=0.05))
    status, out, _ = _summarize(capsys, a, p)
    assert status != 0
    rows = _table_rows(out)
    assert "full" in rows and "holey (PARTIAL)" in rows
    assert rows["holey (PARTIAL)"][6] == "75.0"  # its numbers are shown, but flagged
    table_end = max(i for i, line in enumerate(out.splitlines()) if line.startswith("|"))
    after = out.splitlines()[table_end + 1:]
    notes = [line for line in after if "holey" in line]
    assert len(notes) == 1
    assert "20 of 100 videos left out" in notes[0]
    assert "max_bad_fraction=0.05" in notes[0]
    assert "not comparable" in notes[0]
    assert not any("full" in line for line in after)
