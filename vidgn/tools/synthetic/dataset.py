"""`make_synthetic`: a `SyntheticSpec` -> a dataset on disk in the Kinetics layout.

Why the layout is Kinetics': the demo, the tests and the benchmarks read these videos with the
same code and configs as the real dataset, so names, folders and lists follow it exactly:
    out_dir/classes.txt                       class names, sorted (Kinetics index order)
    out_dir/train.txt, out_dir/val.txt        `path label` lists (label = class index), paths
                                              relative to out_dir
    out_dir/{train,val}/<class name>/<id>_<start:06d>_<end:06d>.{mp4,webm}
    out_dir/synthetic.json                    the spec ("params") and per-video fps/size/frames
Here every video becomes one job (ids, sizes, fps, codec and seed drawn from the spec's seed, in a
fixed order); `render` draws and encodes it, in the subprocesses of `encode`.
"""
from __future__ import annotations

import dataclasses
import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidgn.data.lists import write_list
from vidgn.tools.synthetic.encode import _render_in_subprocesses
from vidgn.tools.synthetic.spec import SyntheticSpec
from vidgn.tools.synthetic.stamp import STAMP_BITS

_ID_CHARS = string.ascii_letters + string.digits + "-_"  # YouTube id alphabet


@dataclass
class SyntheticDataset:
    root: Path
    train_list: Path
    val_list: Path
    classes_file: Path
    classes: list[str]


def _size(x: float) -> int:
    # Multiple of 4: yuv420p needs even sizes, and with an odd chroma width (luma width 2 mod 4)
    # libx264 reads uninitialised row padding, so its output changes from run to run.
    return max(4, int(round(x / 4)) * 4)


def _youtube_id(rng: np.random.Generator) -> str:
    return "".join(_ID_CHARS[i] for i in rng.integers(0, len(_ID_CHARS), 11))


def make_synthetic(out_dir, spec: SyntheticSpec | None = None, **fields) -> SyntheticDataset:
    """Write a deterministic Kinetics-format dataset of motion-defined classes (see module doc).

    Args:
        out_dir: output folder (created; existing files with the same names are overwritten).
        spec: the dataset; default `SyntheticSpec()`.
        **fields: `SyntheticSpec` fields that replace the spec's, e.g.
            `make_synthetic(out_dir, num_classes=4, train_per_class=2, seed=1)`.

    Returns:
        SyntheticDataset with the root, list and classes paths and the class names.

    Raises:
        ValueError: the spec is unusable (see `SyntheticSpec.validate`).
    """
    spec = dataclasses.replace(spec, **fields) if spec is not None else SyntheticSpec(**fields)
    spec.validate()
    chosen = spec.chosen_motions()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    classes = sorted(name for name, _, _ in chosen)  # Kinetics convention: index = sorted position
    label_of = {name: i for i, name in enumerate(classes)}

    seed, seconds, size_jitter = spec.seed, spec.seconds, spec.size_jitter
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    jobs = []
    used_ids: set[str] = set()
    for split, per_class in (("train", spec.train_per_class), ("val", spec.val_per_class)):
        for motion_idx, (name, kind, params) in enumerate(chosen):
            for k in range(per_class):
                vid = _youtube_id(rng)
                while vid in used_ids:
                    vid = _youtube_id(rng)
                used_ids.add(vid)
                start = int(rng.integers(0, 600))
                end = start + max(1, round(seconds))
                jobs.append({
                    "split": split, "label": label_of[name], "kind": kind, "params": params,
                    "stem": f"{vid}_{start:06d}_{end:06d}", "class_name": name,
                    "width": _size(spec.width * rng.uniform(1 - size_jitter, 1 + size_jitter)),
                    "height": _size(spec.height * rng.uniform(1 - size_jitter, 1 + size_jitter)),
                    "seed_key": [seed, 1, 0 if split == "train" else 1, motion_idx, k],
                })
    # fps and codec spread evenly (not i.i.d.), so that even a tiny dataset has every fps and some webm.
    fps_order = rng.permutation(len(jobs))
    n_webm = int(round(spec.webm_fraction * len(jobs)))
    webm_set = set(rng.permutation(len(jobs))[:n_webm].tolist())
    for rank, j in enumerate(fps_order):
        fps = int(spec.fps_choices[rank % len(spec.fps_choices)])
        job = jobs[j]
        ext = "webm" if j in webm_set else "mp4"
        job["rel"] = f"{job['split']}/{job['class_name']}/{job['stem']}.{ext}"
        job.update(path=str(root / job["rel"]), fps=fps, frames=max(1, round(seconds * fps)),
                   noise=float(spec.noise), cue_strength=float(spec.cue_strength),
                   distractors=int(spec.distractors), actors=int(spec.actors),
                   stamp=bool(spec.stamp_frame_index), crf=int(spec.crf),
                   object_size=float(spec.object_size))
        if spec.stamp_frame_index and job["frames"] >= 2**STAMP_BITS:
            raise ValueError(f"{job['frames']} frames do not fit the {STAMP_BITS}-bit index stamp")

    # Always in fresh interpreter processes, even with one worker: see `encode` for why (libx264's
    # uninitialised reads, decord's libvpx).
    metas = _render_in_subprocesses(jobs, max(1, spec.workers))

    classes_file = root / "classes.txt"
    classes_file.write_text("".join(c + "\n" for c in classes), encoding="utf-8")
    lists = {}
    for split in ("train", "val"):
        lists[split] = root / f"{split}.txt"
        write_list(lists[split], [(m["path"], m["label"]) for m, j in zip(metas, jobs)
                                  if j["split"] == split])
    (root / "synthetic.json").write_text(
        json.dumps({"params": spec.recorded_params(), "videos": metas}, indent=1), encoding="utf-8")
    return SyntheticDataset(root=root, train_list=lists["train"], val_list=lists["val"],
                            classes_file=classes_file, classes=classes)
