"""CrashSafeLoader: a DataLoader whose epoch survives a worker killed by one video.

Python-level decode failures never leave ClipDataset.__getitem__ (the dataset replaces or leaves
out the video). A *native* crash is different: FFmpeg/decord can segfault or abort on a damaged
file, the worker process dies, and a plain DataLoader raises "DataLoader worker ... exited
unexpectedly" in the main process, which ends the run. Kinetics downloads contain such files, and
a crash on day three of a 400k-iteration run is the worst time to learn that.

How this loader keeps the run going:
* Each epoch's index batches are drawn once, up front, from the loader's own (batch) sampler, each
  item with a seed of its own for its random choices, so the epoch can be resumed exactly where it
  stopped: after a worker crash, and in a new process from a checkpoint (`state_dict` /
  `load_state_dict`, which Lightning saves and restores; with `EpochShuffle` the order of an epoch
  depends only on the seed and the epoch).
* Every worker writes (pid, video index) into a small shared-memory table before it decodes a video
  and clears it after (`ClipDataset.in_flight`). When a worker dies, the table says which video was
  in its hands.
* The workers are run by an inner DataLoader. When it reports a dead worker, the loader shuts it
  down, marks the video as crashed in the dataset (`ClipDataset.crashed`: from then on the video is
  a bad video like any other: replaced in training, left out and reported in evaluation, counted
  against max_bad_fraction), starts fresh workers and re-fetches the batches that were not yet
  delivered. A death that no video was in flight for (an out-of-memory kill during collation, say)
  is not the data's fault and is re-raised.
* The inner loader's workers are taken off PyTorch's SIGCHLD alarm (which would otherwise raise in
  the middle of whatever the main process is running, e.g. the training step): the death is seen
  at the next batch fetch instead, within PyTorch's 5-second status-check interval.

The price is a few seconds per crash plus the restart of the workers; a run without crashes pays
nothing. With num_workers == 0 there is no worker to lose (a crash ends the process itself), so the
loader behaves as a plain DataLoader.

All this uses private DataLoader internals of torch (see `check_torch_internals`), so pyproject.toml
pins torch to the tested range (TESTED_TORCH). The loader checks the internals when it first starts
workers and raises TorchInternalsError, saying what changed, on a torch that lacks them.
"""
from __future__ import annotations

import logging
import re
import signal
import time

import torch
from torch.utils.data import DataLoader, RandomSampler

log = logging.getLogger("vidgn.data")

# The torch range whose DataLoader internals this loader is tested against; keep it equal to the pin
# in pyproject.toml, and widen both only after tests/test_torch_internals.py and
# tests/test_worker_crash.py pass on the new torch.
TESTED_TORCH = "torch>=2.14,<2.16"
_ITER = "_MultiProcessingDataLoaderIter"  # what iter(DataLoader(num_workers > 0)) returns
_internals_checked = False  # check_torch_internals passed once in this process


class TorchInternalsError(RuntimeError):
    """This torch lacks, or changed, a private DataLoader internal that CrashSafeLoader relies on."""


def check_torch_internals(inner: DataLoader, it=None, *, started: bool = True) -> None:
    """Raise TorchInternalsError unless torch has every private DataLoader internal the loader uses.

    The loader uses:
    * `torch.utils.data._utils.signal_handling._remove_worker_pids(id(it))`: takes the workers off
      PyTorch's SIGCHLD alarm;
    * `DataLoader._iterator`: the iterator of persistent workers, shut down on a restart;
    * on the started multi-process iterator `it`: `_workers` (the worker processes, with `pid` and
      `exitcode`: which worker died), `_worker_pids_set` (True once their pids are registered for the
      alarm, i.e. just after the start when `started`) and `_shutdown_workers()`;
    * the message of a dead worker, "DataLoader worker (pid(s) ...) exited unexpectedly"
      (`_DEAD_WORKER`; not checkable here, tests/test_torch_internals.py kills a worker for it).

    Args:
        inner: the DataLoader that starts the workers.
        it: its iterator, once started; None checks only what is needed before starting workers.
        started: `it` was just started (False: the loader already took its pids off the alarm).
    """
    problems: list[tuple[str, str]] = []
    try:
        from torch.utils.data._utils import signal_handling
        remove = getattr(signal_handling, "_remove_worker_pids", None)
    except ImportError:
        remove = None
    name = "torch.utils.data._utils.signal_handling._remove_worker_pids"
    if remove is None:
        problems.append((name, "missing"))
    elif not callable(remove):
        problems.append((name, f"not callable ({type(remove).__name__})"))
    if "_iterator" not in vars(inner):
        problems.append(("DataLoader._iterator", "missing on a DataLoader instance"))
    if it is not None:
        missing = object()
        workers = getattr(it, "_workers", missing)
        if workers is missing:
            problems.append((f"{_ITER}._workers", "missing on the started iterator"))
        elif not isinstance(workers, (list, tuple)) or not all(
                hasattr(w, "pid") and hasattr(w, "exitcode") for w in workers):
            problems.append((f"{_ITER}._workers", "expected a list of worker processes with pid and exitcode, "
                             f"got {type(workers).__name__} {workers!r:.80}"))
        pids_set = getattr(it, "_worker_pids_set", missing)
        if pids_set is missing:
            problems.append((f"{_ITER}._worker_pids_set", "missing on the started iterator"))
        elif not isinstance(pids_set, bool) or (started and pids_set is not True):
            problems.append((f"{_ITER}._worker_pids_set", "expected True just after the workers started (their "
                             f"pids registered for PyTorch's SIGCHLD alarm), got {pids_set!r}"))
        shutdown = getattr(it, "_shutdown_workers", missing)
        if shutdown is missing:
            problems.append((f"{_ITER}._shutdown_workers", "missing on the started iterator"))
        elif not callable(shutdown):
            problems.append((f"{_ITER}._shutdown_workers", f"not callable ({type(shutdown).__name__})"))
    if problems:
        version = ".".join(torch.__version__.split(".")[:2])
        raise TorchInternalsError(
            f"torch {version} changed DataLoader internals that vidgn.data.loader.CrashSafeLoader relies on "
            f"({', '.join(n for n, _ in problems)}): " + "; ".join(f"{n}: {w}" for n, w in problems)
            + f". Fix: pin torch to the tested range in pyproject.toml ({TESTED_TORCH}) or update the loader "
            "(and run tests/test_torch_internals.py and tests/test_worker_crash.py on the new torch).")


class EpochShuffle(RandomSampler):
    """A random order that depends only on (seed, epoch): a resumed run draws the same epochs.

    A RandomSampler, so that Lightning swaps it for its (equally epoch-seeded) DistributedSampler
    under DDP. torch's RandomSampler draws each epoch from one running generator instead, so a
    fresh process could not repeat epoch k without replaying epochs 0..k-1.
    """

    def __init__(self, data_source, seed: int = 0):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=g).tolist()


class _Batches:
    """The inner loader's batch sampler: a list of index batches the outer loader sets."""

    def __init__(self, batches: list[list] | None = None):
        self.batches: list[list] = batches or []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _item_seed(base: int, epoch: int, position: int) -> int:
    """A seed for one item's random choices from (loader seed, epoch, position in the epoch)."""
    key = ((base * 1_000_003 + epoch) * 1_000_003 + position) % 2**63  # manual_seed takes < 2**64
    return int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(key)).item())


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (often the out-of-memory killer)" if -exitcode == signal.SIGKILL else ""
        return f"the decoder killed its DataLoader worker with {name}{hint}"
    return f"its DataLoader worker exited unexpectedly (exit code {exitcode})"


class CrashSafeLoader(DataLoader):
    """A torch DataLoader (same arguments) over a ClipDataset that survives dead workers.

    The dataset must take (index, seed) keys, have `in_flight` (set here to a shared (num_workers, 2)
    int64 table) and a `crashed` dict {video_index: reason}, as ClipDataset does. See the module
    docstring.
    """

    def __iter__(self):
        batches, done = self._epoch_batches()
        return _CrashSafeIter(self, batches, done)

    # -- where the epoch stands: Lightning's state_dict / load_state_dict protocol -------------------
    def state_dict(self) -> dict:
        """The epoch and how many of its batches were delivered; saved in every checkpoint."""
        return dict(self.__dict__.get("_vidgn_position") or {"epoch": 0, "batches_done": 0})

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next epoch iterated is `state["epoch"]`, without its first batches_done batches."""
        self.__dict__["_vidgn_resume"] = dict(state)

    def _epoch_batches(self) -> tuple[list[list[tuple[int, int]]], int]:
        """This epoch's batches of (dataset index, item seed), and how many were already delivered.

        Drawn once per epoch from the (batch) sampler: sampler epoch, shuffling and DDP sharding
        included. Every item gets its own seed for its random choices (window, scale, crop, flip),
        a function of the loader's seed, the epoch and the item's position in it, so the clips do
        not depend on which worker makes them, and a resumed epoch repeats them exactly.
        """
        resume = self.__dict__.pop("_vidgn_resume", None)
        sampler = self.sampler
        if resume is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(resume["epoch"])
        batches = [list(b) for b in self.batch_sampler]
        epoch = getattr(sampler, "epoch", 0)
        done = resume["batches_done"] if resume is not None and resume["epoch"] == epoch else 0
        if batches and done >= len(batches) and hasattr(sampler, "set_epoch"):
            epoch, done = epoch + 1, 0  # saved at the end of that epoch: the next one comes
            sampler.set_epoch(epoch)
            batches = [list(b) for b in self.batch_sampler]
        base = self.generator.initial_seed() if self.generator is not None else 0
        starts = [0]
        for b in batches:
            starts.append(starts[-1] + len(b))  # positions in the epoch, short last batch included
        seeded = [[(int(i), _item_seed(base, epoch, start + j)) for j, i in enumerate(b)]
                  for start, b in zip(starts, batches)]
        self.__dict__["_vidgn_position"] = {"epoch": epoch, "batches_done": done}
        return seeded, done

    # -- the inner loader that owns the worker processes -------------------------------------------
    def _inner_loader(self, fresh: bool) -> DataLoader:
        inner = self.__dict__.get("_vidgn_inner")
        if inner is not None and not fresh:
            return inner
        if inner is not None:
            _shutdown(inner)
        table = torch.full((self.num_workers, 2), -1, dtype=torch.int64).share_memory_()  # (pid, video)
        self.dataset.in_flight = table  # workers started from here on write into it
        inner = DataLoader(
            self.dataset, batch_sampler=_Batches(), num_workers=self.num_workers, collate_fn=self.collate_fn,
            pin_memory=self.pin_memory, timeout=self.timeout, worker_init_fn=self.worker_init_fn,
            multiprocessing_context=self.multiprocessing_context, generator=self.generator,
            prefetch_factor=self.prefetch_factor, persistent_workers=self.persistent_workers,
            pin_memory_device=self.pin_memory_device)
        inner._vidgn_table = table
        self.__dict__["_vidgn_inner"] = inner  # not a DataLoader attribute: Lightning must not see it
        return inner

    def _start(self, batches: list[list[int]], fresh: bool = False):
        global _internals_checked
        if self.num_workers == 0:  # no worker to lose: a plain single-process iterator
            return iter(DataLoader(self.dataset, batch_sampler=_Batches(batches), collate_fn=self.collate_fn,
                                   pin_memory=self.pin_memory, pin_memory_device=self.pin_memory_device))
        inner = self._inner_loader(fresh)
        if not _internals_checked:
            check_torch_internals(inner)  # before any worker starts
        inner.batch_sampler.batches = batches
        it = iter(inner)
        if not _internals_checked:
            try:
                check_torch_internals(inner, it)
            except TorchInternalsError:
                try:
                    it._shutdown_workers()
                except Exception:  # the missing internal may be this very method
                    pass
                raise
            _internals_checked = True
        if it._worker_pids_set:
            # Off PyTorch's SIGCHLD alarm: see the module docstring.
            torch.utils.data._utils.signal_handling._remove_worker_pids(id(it))
            it._worker_pids_set = False
        return it

    def _crashed_videos(self, it, wait: float = 1.0) -> list[tuple[int, str]]:
        """(video index, reason) for each worker of `it` that died while decoding a video.

        Waits up to `wait` seconds for a dying worker to be gone: the first sign of a death can be
        a broken connection to it (it had sent a batch whose shared memory the main process then
        could not fetch) while the process is still being torn down.
        """
        inner = self.__dict__.get("_vidgn_inner")
        deadline = time.monotonic() + wait
        while True:
            dead = {w.pid: w.exitcode for w in it._workers if w.exitcode not in (None, 0)}
            if dead or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if inner is None or not dead:
            return []
        found = []
        for pid, video in inner._vidgn_table.tolist():
            if pid in dead and video >= 0:
                found.append((video, _death_reason(dead[pid])))
        return found

    def __del__(self):
        inner = self.__dict__.get("_vidgn_inner")
        if inner is not None:
            _shutdown(inner)


def _shutdown(inner: DataLoader) -> None:
    it = getattr(inner, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    inner._iterator = None


_DEAD_WORKER = re.compile(r"DataLoader worker \(pid")


class _CrashSafeIter:
    def __init__(self, loader: CrashSafeLoader, batches: list[list[tuple[int, int]]], done: int = 0):
        self.loader = loader
        self.batches = batches  # the whole epoch's, so that a restart resumes them exactly
        self.done = done
        self.it = loader._start(self.batches[done:])

    def __iter__(self):
        return self

    def __len__(self) -> int:
        return len(self.batches)

    def __next__(self):
        while True:
            try:
                batch = next(self.it)
            except StopIteration:
                raise
            except Exception as e:
                if self.loader.num_workers == 0:
                    raise
                # A dead worker shows up as PyTorch's "worker ... exited unexpectedly" or, when it
                # died just after sending a batch, as a broken connection while fetching that batch.
                crashed = self.loader._crashed_videos(self.it)
                if not crashed:
                    if _DEAD_WORKER.search(str(e)):
                        raise RuntimeError(f"{e}, and no video was being decoded by it, so it is not a bad "
                                           "video: look for the cause outside the data (out of memory? "
                                           "lower data.num_workers or data.clips_per_gpu)") from e
                    raise
                dataset = self.loader.dataset
                for video, reason in crashed:
                    dataset.crashed[video] = reason
                    log.warning("%s while decoding %s; restarting the workers without it (batch %d of %d)",
                                reason, dataset.path(video), self.done + 1, len(self.batches))
                self.it = self.loader._start(self.batches[self.done:], fresh=True)
                continue
            self.done += 1
            self.loader.__dict__["_vidgn_position"]["batches_done"] = self.done
            return batch
