"""GPU checks of the real Table 8 networks and the benchmarks (skipped without CUDA; run with `-m gpu`).

    pytest -m gpu tests/test_gpu.py -s

runs, on the node's first GPU:
* one training step of I3D ResNet-50 at each Table 8 shape (bf16, channels_last_3d, as configs/kinetics);
* `vidgn bench model`: R50 at the six Table 8 settings (BN and GN interleaved x 32x2:8, 32x2:4, 64x1:4),
  bf16, channels_last on and off: step time, clips/s, peak memory, MFU;
* `vidgn bench data`: per-worker clips/s (vidgn and the decode floor) and the total of the training
  loader with 1 worker and with every core;
* `vidgn bench fit`: R50 BN 32x2 x 8 clips, one worker per core, end to end beside model-only and
  data-only;
* the decode cores one GPU needs at each Table 8 setting, from the two measurements above.
The JSON files go to $VIDGN_BENCH_OUT (default runs/bench/gpu-<UTC time>/, printed); their tables
are what docs/benchmarks.md's GPU section takes. No timing is asserted: the checks are that every
command runs, writes its JSON with finite losses, and that the 64-frame 4-clip R50 fits in 80 GB
with room to spare.
"""
import argparse
import datetime
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vidgn import benchmarks
from vidgn.benchmarks import common
from vidgn.benchmarks import data as bench_data
from vidgn.benchmarks import fit as bench_fit
from vidgn.benchmarks import model as bench_model
from vidgn.models import I3DResNet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("frames,clips", [(32, 8), (32, 4), (64, 4)], ids=["32f_8c", "32f_4c", "64f_4c"])
def test_r50_training_step_bf16(norm, frames, clips):
    torch.manual_seed(0)
    net = I3DResNet(depth=50, num_classes=400, norm=norm).cuda().to(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(clips, 3, frames, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, 400, (clips,), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    print(f"{norm} {frames}f x {clips} clips: peak {peak_gib:.1f} GiB")


def _parse(what, argv):
    p = argparse.ArgumentParser()
    benchmarks.add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["bench", what, *argv])


@pytest.fixture(scope="module")
def out_dir():
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(os.environ.get("VIDGN_BENCH_OUT") or Path("runs") / "bench" / f"gpu-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nbenchmark JSON -> {out.resolve()}")
    return out


@pytest.fixture(scope="module")
def model_results(out_dir):
    path = out_dir / "model.json"
    args = _parse("model", ["--depth", "50", "--norm", "bn", "--norm", "gn", "--precision", "bf16-mixed",
                            "--channels-last", "on,off", "--steps", "20", "--warmup", "5", "--device", "cuda",
                            "--json", str(path)])
    status = bench_model.run(args)
    return status, json.loads(path.read_text())


@pytest.fixture(scope="module")
def data_results(out_dir):
    import decord

    path = out_dir / "data.json"
    args = _parse("data", ["--skip", "pytorchvideo", "--clips", "40", "--workers", f"1,{os.cpu_count()}",
                           "--batch", "8", "--batches", "20", "--json", str(path)])
    try:
        status = bench_data.run(args)
    finally:
        decord.bridge.set_bridge("native")
    return status, json.loads(path.read_text())


def test_bench_model_table8_r50(model_results):
    status, meta = model_results
    rows = meta["results"]
    assert status == 0, [r.get("error") for r in rows]
    assert {(r["frames"], r["sampling"], r["clips"]) for r in rows} == {(32, 2, 8), (32, 2, 4), (64, 1, 4)}
    assert len(rows) == 3 * 2 * 2  # settings x channels_last x norms
    gpu_gib = meta["gpu_memory_gib"]
    for r in rows:
        assert r["loss_finite"] and r["peak_mem_gib"] > 0 and r["flops_per_step"] > 0
        assert r["peak_mem_gib"] < gpu_gib
        if (r["frames"], r["clips"]) == (64, 4):
            assert r["peak_mem_gib"] < 0.75 * 80, "64-frame 4-clip R50 must fit an 80 GB GPU with room to spare"
    print()
    print(bench_model.summary_table(rows))


def test_bench_fit_r50_every_core(out_dir):
    path = out_dir / "fit.json"
    args = _parse("fit", ["--depth", "50", "--norm", "bn", "--clip", "32x2", "--clips", "8",
                          "--workers", str(os.cpu_count()), "--steps", "20", "--warmup", "3",
                          "--device", "cuda", "--json", str(path)])
    assert bench_fit.run(args) == 0
    meta = json.loads(path.read_text())
    med = meta["clips_per_s"]
    assert med["fit"] > 0 and meta["bound_by"] in ("model", "data")
    print(f"\nmedians: fit {med['fit']:.2f} clips/s, model-only {med['model_only']:.2f}, data-only "
          f"{med['data_only']:.2f} ({meta['setting']['workers']} workers): bound by {meta['bound_by']}, "
          f"fit / min = {meta['fit_over_bound']:.2f} (goal >= 0.8)")


def test_decode_cores_per_gpu(model_results, data_results, out_dir):
    """Cores one GPU needs at each Table 8 setting: its clips/s (bench model, channels_last on) over
    one worker's clips/s (bench data, vidgn loader, same clip shape)."""
    _, model = model_results
    status, data = data_results
    assert status == 0
    per_core = {r["clip"]: r["clips_per_s"] for r in data["results"] if r["method"] == "vidgn"}
    rows = []
    for r in model["results"]:
        if not r["channels_last"] or "error" in r:
            continue
        clip = f"{r['frames']}x{r['sampling']}"
        cores = common.decode_cores_needed(clips_per_step=r["clips"], step_s=r["step_time"]["median_s"],
                                           clips_per_s_per_core=per_core[clip])
        rows.append({"clip": clip, "clips": r["clips"], "norm": r["norm"], "step_s": r["step_time"]["median_s"],
                     "worker_clips_per_s": per_core[clip], "cores_needed": cores})
    common.write_json(out_dir / "decode_cores.json", {**common.run_info("cuda"), "rows": rows})
    assert rows and all(r["cores_needed"] > 0 for r in rows)
    print("\n| clip | clips | norm | step s | clips/s per worker | decode cores per GPU |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['clip']} | {r['clips']} | {r['norm']} | {r['step_s']:.3f} | {r['worker_clips_per_s']:.1f} | "
              f"{r['cores_needed']:.1f} |")
