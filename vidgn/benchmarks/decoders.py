"""`vidgn bench decoders`: which decord build decodes what downloads contain, exactly, and how fast.

Decides the decoder build by measurement, not by name. For every file of a matrix of real encoded
videos (`decoder_matrix_files`: H.264/HEVC/VP9/AV1/MJPEG, 8 and 10 bit, widths 16..1920, rotated,
variable frame rate, mp4/webm/mkv/avi) the installed decord is asked for all frames, every 2nd
frame and a shuffled draw with repeats (each from a fresh reader, so seeks happen), two ways:
* raw: `decord.VideoReader(...).get_batch(indices)`, decord alone;
* vidgn: `vidgn.data.video.open_video` + `decode_frames`, the project's own path with its
  fallbacks, i.e. what training, testing and `check-videos` get.
Each returned frame is compared with PyAV's frame at the same index in display orientation
(`match`: a few grey levels from it and far closer to it than to its neighbours), and clips (64
consecutive frames, or all of a shorter file, from a fresh reader as a worker does it) are timed.

Each file is checked in a spawned child process, so a decoder that crashes costs one row, not the run.
Run it once per decord build (they own the same `decord` import; never install both) and compare
the JSON files: `--compare A.json B.json` prints the markdown table of docs/decoders.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from vidgn.benchmarks.decoder_matrix_files import Case, match, matrix_cases, reference_frames, write_case

CLIP = 64  # frames per timed clip: the paper's 64x1


def decoder_build() -> dict:
    """The installed decord distribution: {"distribution", "version", "module"}."""
    from importlib import metadata

    found = []
    for dist in ("decord2", "decord"):  # both own the `decord` import; only one may be installed
        try:
            found.append({"distribution": dist, "version": metadata.version(dist)})
        except metadata.PackageNotFoundError:
            pass
    build = found[0] if len(found) == 1 else {"distribution": "+".join(f["distribution"] for f in found) or "none",
                                             "version": "+".join(f["version"] for f in found)}
    try:
        import decord

        build["module"] = os.path.dirname(decord.__file__)
    except ImportError as e:
        build["module"] = f"not importable: {e}"
    return build


def _array(frames) -> np.ndarray:
    if hasattr(frames, "asnumpy"):
        return frames.asnumpy()
    return frames.numpy() if hasattr(frames, "numpy") else np.asarray(frames)


def _verdict(frames: np.ndarray, refs: list[np.ndarray], indices: list[int], rotation: int) -> dict:
    """Are `frames` PyAV's frames at `indices`? Also names the orientation they came in."""
    if frames.ndim != 4 or frames.shape[0] != len(indices):
        return {"exact": False, "error": f"returned shape {tuple(frames.shape)} for {len(indices)} frames"}
    results = [match(frames[k], refs, i) for k, i in enumerate(indices)]
    bad = [i for (ok, _), i in zip(results, indices) if not ok]
    out = {"exact": not bad, "max_diff": round(max(d for _, d in results), 2), "bad_frames": bad[:8],
           "shape": list(frames.shape[1:3])}
    if bad and rotation:  # coded orientation, i.e. the display matrix ignored?
        k = (rotation // 90) % 4
        coded = [np.ascontiguousarray(np.rot90(r, -k)) for r in refs]
        if all(match(frames[j], coded, i)[0] for j, i in enumerate(indices)):
            out["orientation"] = "coded (display rotation ignored)"
    return out


def check_file(path: str, num_threads: int, repeats: int) -> dict:
    """Decode `path` raw and through vidgn.data.video, compare with PyAV, time clips (a child process)."""
    import decord

    from vidgn.data.video import VideoDecodeError, _short, decode_frames, open_video

    refs, rotation = reference_frames(path)
    n = len(refs)
    row: dict = {"pyav_frames": n, "rotation": rotation, "shape": list(refs[0].shape[:2])}
    rng = np.random.default_rng(0)
    patterns = {"all": list(range(n)), "every_2nd": list(range(0, n, 2)),
                "shuffled": [int(i) for i in rng.integers(0, n, min(n, 32))]}
    try:  # a reader per pattern: each starts from a fresh decoder state, as in a worker
        row["raw"] = {}
        for name, idx in patterns.items():
            vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
            row["raw_len"] = len(vr)
            row["raw"][name] = _verdict(_array(vr.get_batch(idx)), refs, idx, rotation)
            del vr
        row["raw_exact"] = all(v["exact"] for v in row["raw"].values())
    except Exception as e:  # decord raises DECORDError (a RuntimeError) and others
        row["raw"], row["raw_exact"] = {"error": _short(e)}, False
    try:
        row["vidgn"] = {}
        for name, idx in patterns.items():
            reader, info = open_video(path, num_threads=num_threads)
            row["vidgn_len"] = info.num_frames
            row["vidgn_seeks"] = getattr(reader, "vidgn_seeks_exactly", True)  # False: read from frame 0
            row["vidgn"][name] = _verdict(_array(decode_frames(reader, idx, path)), refs, idx, rotation)
            del reader
        row["vidgn_exact"] = all(v["exact"] for v in row["vidgn"].values())
    except VideoDecodeError as e:
        row["vidgn"], row["vidgn_exact"] = {"error": e.reason}, False
    del refs

    length = min(CLIP, n)
    starts = [int(s) for s in rng.integers(0, n - length + 1, repeats)]
    for way in ("vidgn", "raw"):
        if not row[f"{way}_exact"]:
            continue  # timing a wrong answer says nothing
        ms = []
        for s in starts:  # a fresh reader per clip, as a worker opening the video of each sample
            t0 = time.perf_counter()
            if way == "vidgn":
                reader, _ = open_video(path, num_threads=num_threads)
                decode_frames(reader, range(s, s + length), path)
            else:
                reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
                reader.get_batch(list(range(s, s + length)))
            ms.append((time.perf_counter() - t0) * 1e3)
            del reader
        row[f"{way}_ms"] = {"clip": length, "median": round(statistics.median(ms), 2), "min": round(min(ms), 2)}
    return row


def run_matrix(cases: list[Case], folder: str | Path, *, num_threads: int = 1, repeats: int = 5,
               log=print) -> dict:
    """Generate (or reuse) the files of `cases` in `folder`, check each; the JSON-ready result."""
    result = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "decoder": decoder_build(), "versions": _versions(), "num_threads": num_threads,
              "load_before": [round(x, 2) for x in os.getloadavg()], "cases": []}
    log(f"decoder: {result['decoder']['distribution']} {result['decoder']['version']} "
        f"({result['decoder']['module']}); load {result['load_before']}")
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))  # decord must not cross a fork
    try:
        for case in cases:
            path = write_case(case, folder)
            try:
                row = pool.submit(check_file, str(path), num_threads, repeats).result()
            except BrokenProcessPool:
                crash = {"error": "decoder crashed the process"}
                row = {"raw": crash, "raw_exact": False, "vidgn": crash, "vidgn_exact": False}
                pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
            row = {"name": case.name, "case": asdict(case), "file": path.name, **row}
            result["cases"].append(row)
            log(_line(row))
    finally:
        pool.shutdown()
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _versions() -> dict:
    from importlib import metadata

    return {d: metadata.version(d) for d in ("av", "torch", "numpy") if _installed(d)}


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def _status(row: dict, way: str) -> str:
    v = row.get(way) or {}
    if "error" in v:
        return "FAILS " + re.sub(r"\[[\d:]+\] \S+:\d+: ", "", v["error"])[:80]  # drop decord's source location
    if row.get(f"{way}_exact"):
        return "exact" + (" (no seeks)" if way == "vidgn" and row.get("vidgn_seeks") is False else "")
    name, wrong = next((k, x) for k, x in v.items() if not x["exact"])
    return f"WRONG ({name}) " + wrong.get("orientation", wrong.get("error", f"frames {wrong.get('bad_frames')}"))


def _ms(row: dict, way: str) -> str:
    t = row.get(f"{way}_ms")
    return "-" if t is None else f"{t['median']:.1f}" + ("" if t["clip"] == CLIP else f" ({t['clip']} fr)")


def _line(row: dict) -> str:
    return (f"{row['name']:<20} raw: {_status(row, 'raw'):<28} {_ms(row, 'raw'):>12} ms | "
            f"vidgn: {_status(row, 'vidgn'):<28} {_ms(row, 'vidgn'):>12} ms")


def _cell(row: dict, way: str) -> str:
    """`_status` in a few words, for a table cell."""
    text, error = _status(row, way), (row.get(way) or {}).get("error", "")
    if error:
        if "video stream" in error:
            return "cannot open (no decoder)"
        return "copy fails (row padding)" if "DECORDArrayCopy" in error else text[:40]
    if text.startswith("WRONG"):
        return "wrong frames after a seek" if "(all)" not in text else text[6:40]
    return text


def compare(paths: list[str]) -> str:
    """Markdown of several runs' JSON (e.g. both builds, interleaved repeats): a table of the format
    rows (per build: the vidgn-path verdict, raw get_batch verdict, median over the runs of each
    run's median ms per clip through vidgn) and a line per build for the width sweep."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    builds: dict[str, list[dict]] = {}
    for r in runs:
        builds.setdefault(f"{r['decoder']['distribution']} {r['decoder']['version']}", []).append(r)
    lines = ["| file |" + "".join(f" {b}: vidgn | raw get_batch | ms/clip |" for b in builds),
             "|---|" + "---|---|---:|" * len(builds)]
    for case in runs[0]["cases"]:
        if case["case"]["group"] != "format":
            continue
        cells = []
        for rs in builds.values():
            rows = [c for r in rs for c in r["cases"] if c["name"] == case["name"]]
            ms = [c["vidgn_ms"]["median"] for c in rows if c.get("vidgn_ms")]
            clip = rows[0].get("vidgn_ms", {}).get("clip", CLIP)
            cells += [_cell(rows[0], "vidgn"), _cell(rows[0], "raw"),
                      (f"{statistics.median(ms):.1f}" + ("" if clip == CLIP else f" ({clip} fr)")) if ms else "-"]
        lines.append(f"| {case['name']} | " + " | ".join(cells) + " |")
    for build, rs in builds.items():
        sweep = [c for c in rs[0]["cases"] if c["case"]["group"] == "width"]
        if sweep:
            fails = [c["case"]["width"] for c in sweep if not c.get("raw_exact")]
            exact = sum(bool(c.get("vidgn_exact")) for c in sweep)
            lines.append(f"\n{build}, H.264 widths {sweep[0]['case']['width']}..{sweep[-1]['case']['width']}: raw "
                         f"get_batch fails at {fails or 'none'}; vidgn exact at {exact} of {len(sweep)} widths.")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("decoders", help="decode a matrix of real videos with the installed decord: "
                              "frame-exact against PyAV, and timed", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", default="decoder_matrix",
                   help="folder of the matrix videos (encoded when missing, reused otherwise)")
    p.add_argument("--matrix", choices=["full", "tiny"], default="full", help="which matrix of files")
    p.add_argument("--only", metavar="NAME[,NAME...]", help="check only these files of the matrix (names as printed)")
    p.add_argument("--repeats", type=int, default=5, help="timed clips per file")
    p.add_argument("--num-threads", type=int, default=1, help="decord threads per reader (training: 1)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--compare", nargs="+", metavar="JSON",
                   help="print the markdown table of earlier runs' JSON files instead of measuring")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        print(compare(args.compare))
        return 0
    if args.repeats < 1 or args.num_threads < 1:
        print("vidgn bench decoders: error: --repeats and --num-threads must be >= 1", file=sys.stderr)
        return 2
    cases = matrix_cases(args.matrix)
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {c.name for c in cases})
        if unknown:
            print(f"vidgn bench decoders: error: --only {','.join(unknown)}: not in the {args.matrix} matrix "
                  f"(its files: {', '.join(c.name for c in cases)})", file=sys.stderr)
            return 2
        cases = [c for c in cases if c.name in names]
    result = run_matrix(cases, args.files, num_threads=args.num_threads, repeats=args.repeats)
    wrong = [c["name"] for c in result["cases"] if not c.get("vidgn_exact")]
    print(f"{len(cases) - len(wrong)}/{len(cases)} files decode exactly through vidgn.data.video"
          + (f"; not: {', '.join(wrong)}" if wrong else ""))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0
