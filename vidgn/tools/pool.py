"""A crash-safe process pool: run one call per video in worker processes, where a decoder crash
(a segfault that kills the worker) costs only the video that caused it.

Used by `vidgn check-videos` and `vidgn resize-videos`. `run_isolating_crashes` hands only a bounded
window of calls (twice the number of workers) to the pool at a time. A worker killed by a crash
breaks the pool and fails every pending future, so the window bounds what has to be redone: the
calls of the window that had not finished are run again each alone, in a 1-process pool of its own
(the one that crashes again gets `CRASHED` as its result), and the calls not yet started go on in a
new shared pool. Each result is handed to `on_result` in the caller's process as soon as it is known.

Workers are spawned (no decord/torch state of the caller crosses a fork), ignore SIGINT (Ctrl-C
reaches the whole process group; the caller alone handles it) and die with the caller (Linux:
PR_SET_PDEATHSIG), so a killed run leaves no worker going on with its queue. When the caller is
interrupted (Ctrl-C, a SIGTERM turned into KeyboardInterrupt, or a failing `on_result`), the workers
are stopped at once rather than left to finish their videos, `on_abort` tidies after the calls that
were in flight, and the exception propagates. A call that hangs is not interrupted.
"""
from __future__ import annotations

import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Callable, Iterable

CRASHED = "the decoder crashed the process"


def run_isolating_crashes(fn: Callable, calls: Iterable[tuple], *, workers: int,
                          on_result: Callable[[tuple, object], None],
                          on_abort: Callable[[list[tuple]], None] | None = None) -> None:
    """Run `fn(*call)` for every call (a tuple of picklable arguments) in a crash-safe process pool.

    `on_result(call, result)` is called in the caller's process as each call finishes; a call whose
    process crashed even when run alone gets `CRASHED` as its result (a pool that breaks for another
    reason does the same: the calls are redone alone). `fn`'s own exceptions propagate. At most
    `2 * workers` calls are in flight at a time. On any exception in the caller (KeyboardInterrupt
    included) the workers are terminated, `on_abort(calls in flight)` is called if given, and the
    exception propagates.
    """
    ctx = get_context("spawn")  # fresh workers: no torch/decord state of the caller
    workers = max(1, workers)
    window = 2 * workers
    todo = deque(calls)
    while todo:
        in_flight: dict = {}  # future -> call, for the calls handed to this pool
        broken = False
        pool = _pool(workers, ctx)
        try:
            while not broken and (todo or in_flight):
                while todo and len(in_flight) < window:
                    try:
                        future = pool.submit(fn, *todo[0])
                    except BrokenProcessPool:
                        broken = True
                        break
                    in_flight[future] = todo.popleft()
                if broken:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True  # a worker died (decoder crash); sorted out below
                        continue
                    on_result(in_flight.pop(future), result)
        except BaseException:
            _abort([pool], list(in_flight.values()), on_abort)
            raise
        pool.shutdown(wait=True)
        if not broken:
            break
        # Every submitted future is done now (the pool is shut down). Those that finished before
        # the pool broke keep their result; the others can have been running when it broke.
        suspects = []
        for future, call in in_flight.items():
            if not future.cancelled() and future.exception() is None:
                on_result(call, future.result())
            else:
                suspects.append(call)
        _run_each_alone(fn, suspects, ctx, workers, on_result, on_abort)


def _run_each_alone(fn, calls: list[tuple], ctx, workers: int, on_result, on_abort) -> None:
    """Run each call in a 1-process pool of its own, `workers` of them at a time, so that a crash
    is pinned on the call (the video) that causes it."""
    for i in range(0, len(calls), workers):
        batch = calls[i:i + workers]
        pools = [_pool(1, ctx) for _ in batch]
        try:
            futures = [pool.submit(fn, *call) for pool, call in zip(pools, batch)]
            for call, future in zip(batch, futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    result = CRASHED
                on_result(call, result)
        except BaseException:
            _abort(pools, batch, on_abort)
            raise
        for pool in pools:
            pool.shutdown()


def _abort(pools: list[ProcessPoolExecutor], in_flight: list[tuple], on_abort) -> None:
    """Stop the pools' workers now (no waiting for the videos in flight), then tidy after those."""
    procs = [proc for pool in pools
             for proc in (getattr(pool, "_processes", None) or {}).values()]  # no public API for it
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)
    if on_abort is not None:
        on_abort(in_flight)


def _pool(workers: int, ctx) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))


def _init_worker(parent_pid: int) -> None:
    """Pool initializer. Ctrl-C reaches the workers too (same process group): the parent alone
    handles it (and stops the workers). A worker whose run was killed (kill -9, a closed terminal)
    must not go on with the videos still queued to it: on Linux the kernel sends it SIGTERM when
    the parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: workers then end when they find the call queue closed
    if os.getppid() != parent_pid:  # died before prctl took effect
        os._exit(1)
