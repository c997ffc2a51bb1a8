"""`vidgn bench data`: a tiny smoke run (the real measurement is marked benchmark)."""
import argparse
import json

import pytest

from vidgn import benchmarks
from vidgn.benchmarks import data as bench


def parse(argv):
    p = argparse.ArgumentParser()
    benchmarks.add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["bench", "data", *argv])


def test_bench_data_smoke(synthetic_dataset, tmp_path):
    import decord

    out = tmp_path / "bench.json"
    args = parse(["--data-root", str(synthetic_dataset.root), "--list", str(synthetic_dataset.val_list),
                  "--clip", "4x2", "--crop", "32", "--short-side", "40", "48", "--clips", "2", "--warmup", "1",
                  "--in-process", "--json", str(out)])
    try:
        assert bench.run(args) == 0
    finally:
        decord.bridge.set_bridge("native")  # pytorchvideo switched it to torch process-wide
    meta = json.loads(out.read_text())
    by = {r["method"]: r for r in meta["results"]}
    assert set(by) == {"vidgn", "pytorchvideo", "floor"}
    assert by["vidgn"]["out_shape"] == [1, 3, 4, 32, 32]
    assert by["pytorchvideo"]["out_shape"] == [3, 4, 32, 32]
    assert by["floor"]["out_shape"][0] == 4
    assert all(r["clips_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in by.values())
    assert "vidgn" in bench.summary_table(meta["results"])


def test_bench_refuses_a_config_whose_videos_are_missing(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  data_root: {tmp_path}\n  train_list: {tmp_path / 'nope.txt'}\n")
    with pytest.raises(SystemExit, match=r"nope.txt \(data.train_list of .*c.yaml\) is not a file"):
        bench.bench_data(parse(["--config", str(cfg)]))


@pytest.mark.benchmark
def test_bench_data_full(tmp_path):
    """The documented run: 340x256 10 s H.264 videos, 32x2 and 64x1 at 224 (a minute or two)."""
    args = parse(["--json", str(tmp_path / "bench.json")])
    assert bench.run(args) == 0
