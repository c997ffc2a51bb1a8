"""Deterministic encoding: every video is rendered and encoded in a fresh `python` subprocess.

Why subprocesses, always (even with one worker), for two reasons:
(1) libx264 reads some uninitialised memory, so a video's bytes would depend on what the process's
    heap held before (the videos encoded earlier in it, hence on `workers`); the subprocesses run
    with glibc's MALLOC_PERTURB_, which fills every fresh allocation with a fixed byte, so the same
    seed gives the same bytes whatever ran before and however the jobs are spread over workers.
(2) decord loads its own, older libvpx with RTLD_GLOBAL; once it is imported, PyAV's libavcodec
    binds to that libvpx and VP9 encoding fails ("avcodec_open2(libvpx-vp9) returned 22"). A fresh
    interpreter has never imported decord, whatever the caller (a test session, a DataModule) did.

Plain subprocesses, not multiprocessing: spawn/forkserver re-run the caller's __main__ script, and
fork would inherit decord's libvpx. Jobs go in as JSON on stdin, metadata comes back on stdout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import vidgn
from vidgn.tools.synthetic.render import render_video

# What each subprocess runs: `_render_stdin` below.
_CHILD_CODE = "from vidgn.tools.synthetic.encode import _render_stdin; _render_stdin()"


def _render_in_subprocesses(jobs: list[dict], workers: int) -> list[dict]:
    """Run `render_video` over `jobs` in `workers` fresh `python` processes; metadata in job order."""
    env = dict(os.environ)
    env["MALLOC_PERTURB_"] = "165"  # see the module doc: same seed, same bytes, whatever ran before
    pkg_parent = str(Path(vidgn.__file__).resolve().parents[1])  # so that `import vidgn` works in the child
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    chunks = [list(range(i, len(jobs), workers)) for i in range(workers)]
    chunks = [c for c in chunks if c]
    procs = []
    for chunk in chunks:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD_CODE],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        proc.stdin.write(json.dumps([jobs[i] for i in chunk]))
        proc.stdin.close()
        procs.append(proc)
    metas: list[dict | None] = [None] * len(jobs)
    failed = []
    for chunk, proc in zip(chunks, procs):
        out = proc.stdout.read()
        proc.stdout.close()
        if proc.wait() != 0:
            failed.append(proc.returncode)
            continue
        for i, meta in zip(chunk, json.loads(out)):
            metas[i] = meta
    if failed:
        raise RuntimeError(f"video rendering subprocess(es) failed with exit status {failed}; "
                           "see the error printed above")
    return metas


def _render_stdin() -> None:
    """Subprocess entry: JSON list of jobs on stdin -> JSON list of metadata on stdout."""
    jobs = json.loads(sys.stdin.read())
    json.dump([render_video(job) for job in jobs], sys.stdout)
