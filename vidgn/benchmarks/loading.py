"""The real training loader, measured: VideoDataModule's train DataLoader with N workers, in clips/s.

Shared by `vidgn bench data --workers` (what a node's cores deliver) and `vidgn bench fit` (the
data-only figure beside the end-to-end one), so both measure the code path training uses:
ClipDataset in CrashSafeLoader workers, EpochShuffle order, collate into the batch.

Benchmark lists are short (a handful of synthetic videos) and a Kinetics epoch is long (~30k
batches): measured over a short list's epochs, every epoch boundary would drain and refill the
workers' prefetch queue and count that against the loader. `repeat_list` writes the list repeated
until one epoch holds the whole run, as on Kinetics.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def repeat_list(src: str | Path, *, min_entries: int, out_path: str | Path) -> Path:
    """Write `src`'s video lines repeated until there are at least `min_entries`; returns out_path."""
    lines = [ln for ln in Path(src).read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{src} lists no videos")
    reps = -(-min_entries // len(lines))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(ln + "\n" for ln in lines * max(reps, 1)), encoding="utf-8")
    return out


def make_datamodule(*, data_root: str, train_list: str | Path, classes_file: str | None, frames: int,
                    sampling: int, clips: int, workers: int, decode_threads: int = 1,
                    short_side: tuple[int, int] = (256, 320), crop: int = 224, persistent_workers: bool = True,
                    seed: int = 0):
    """A VideoDataModule for training on `train_list`, set up for fit (its lists parsed and checked)."""
    from vidgn.data.datamodule import VideoDataModule
    from vidgn.data.lists import find_classes_file

    if classes_file is None:
        found = find_classes_file(train_list, data_root)
        classes_file = str(found) if found else None
    dm = VideoDataModule(data_root=data_root, train_list=str(train_list), classes_file=classes_file,
                         num_frames=frames, sampling_rate=sampling, clips_per_gpu=clips, num_workers=workers,
                         decode_threads=decode_threads, train_short_side=tuple(short_side), train_crop=crop,
                         persistent_workers=persistent_workers, seed=seed)
    dm.setup("fit")
    return dm


def default_prefetch() -> int:
    """VideoDataModule's prefetch_factor default, which the benchmarks' loaders use."""
    import inspect

    from vidgn.data.datamodule import VideoDataModule

    return int(inspect.signature(VideoDataModule).parameters["prefetch_factor"].default)


def queued_batches(dm) -> int:
    """Batches the loader may hold ready at once (prefetch_factor per worker). After the warm-up,
    that many more are taken untimed: they were made while nobody was waiting, and timing them
    would count them as made instantly. Past them every batch arrives as fast as workers make it."""
    return dm.prefetch_factor * dm.num_workers if dm.num_workers > 0 else 0


def measure_loader(dm, *, warmup: int, batches: int) -> dict[str, Any]:
    """Clips/s of `dm`'s train loader alone: `warmup` batches and the queue's worth untimed
    (worker start-up, prefetch), then `batches` timed. The loader's output on the host, as the
    workers deliver it (the device copy and normalisation belong to the step)."""
    loader = dm.train_dataloader()
    it = iter(loader)
    try:
        for _ in range(warmup + queued_batches(dm)):
            next(it)
        clips = 0
        t0 = time.perf_counter()
        for _ in range(batches):
            clips += len(next(it)["label"])
        seconds = time.perf_counter() - t0
    finally:
        # Workers go now, not whenever the garbage collector gets to them (they would compete with
        # the next measurement for the cores). CrashSafeLoader's iterator wraps torch's as `.it`.
        shutdown = getattr(getattr(it, "it", it), "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        del it, loader
    return {"workers": dm.num_workers, "batches": batches, "clips": clips, "seconds": seconds,
            "clips_per_s": clips / seconds}


def node_throughput(*, data_root: str, train_list: str, frames: int, sampling: int, workers: list[int],
                    clips: int, short_side: tuple[int, int], crop: int, decode_threads: int, warmup: int,
                    batches: int, seed: int = 0) -> list[dict[str, Any]]:
    """Total clips/s of the training loader with each worker count of `workers`: what a node's cores
    deliver to its GPU(s), measured rather than multiplied from the one-worker figure (workers share
    memory bandwidth, caches and, on a busy machine, cores)."""
    import tempfile

    from vidgn.data.lists import find_classes_file

    classes = find_classes_file(train_list, data_root)  # beside the original list, not the repeated one
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidgn-bench-loader-") as tmp:
        for n in workers:
            need = (warmup + default_prefetch() * n + batches + 1) * clips
            lst = repeat_list(train_list, min_entries=need, out_path=Path(tmp) / f"train_{n}.txt")
            row: dict[str, Any] = {"clip": f"{frames}x{sampling}", "workers": n, "batch": clips}
            try:
                dm = make_datamodule(data_root=data_root, train_list=lst, classes_file=classes and str(classes),
                                     frames=frames, sampling=sampling, clips=clips, workers=n,
                                     decode_threads=decode_threads, short_side=short_side, crop=crop,
                                     persistent_workers=False, seed=seed)
                row.update(measure_loader(dm, warmup=warmup, batches=batches))
                row["clips_per_s_per_worker"] = row["clips_per_s"] / max(n, 1)
            except Exception as e:  # report it beside the other worker counts, don't lose them
                row["error"] = f"{type(e).__name__}: {e}"
            rows.append(row)
    return rows


def node_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| clip | workers | batch | clips/s (total) | clips/s per worker |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['clip']} | {r['workers']} | {r['batch']} | error: {r['error'][:60]} | |")
        else:
            lines.append(f"| {r['clip']} | {r['workers']} | {r['batch']} | {r['clips_per_s']:.2f} | "
                         f"{r['clips_per_s_per_worker']:.2f} |")
    return "\n".join(lines)
