"""CrashSafeLoader relies on private DataLoader internals of torch; a torch that changes them must fail
with a clear message (pin torch, or update the loader), not an AttributeError deep inside an epoch.

Run this file (and tests/test_worker_crash.py) before widening the torch range in pyproject.toml.
"""
from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils import signal_handling

from vidgn.data import loader as loader_mod


class TinyClips(Dataset):
    """Stands in for ClipDataset: the `in_flight` table and `crashed` dict CrashSafeLoader uses."""

    def __init__(self, n: int = 6):
        self.n = n
        self.in_flight = None
        self.crashed: dict[int, str] = {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: tuple[int, int]):  # (index, seed), as CrashSafeLoader hands them out
        return torch.tensor([key[0]])

    def path(self, i: int) -> str:
        return f"video{i}.mp4"


class Stuck(Dataset):
    """Never delivers an item: its worker can be killed before any batch reaches the main process."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        time.sleep(60)
        return i


def _loader(**kw) -> loader_mod.CrashSafeLoader:
    return loader_mod.CrashSafeLoader(TinyClips(), batch_size=2, num_workers=1, multiprocessing_context="fork",
                                      **kw)


@pytest.fixture
def unchecked(monkeypatch):
    """Make the loader run its once-per-process check of the torch internals again."""
    monkeypatch.setattr(loader_mod, "_internals_checked", False)


def test_this_torch_has_every_internal_the_loader_uses(unchecked):
    loader = _loader()
    inner = loader._inner_loader(fresh=True)
    loader_mod.check_torch_internals(inner)  # before any worker starts
    it = loader._start([[(0, 0), (1, 0)], [(2, 0), (3, 0)]])  # (index, seed) keys
    try:
        # The started iterator has what the loader reads: the worker processes, the flag that their
        # pids were registered for PyTorch's SIGCHLD alarm (the loader took them off it), shutdown.
        loader_mod.check_torch_internals(inner, it, started=False)
        assert it._worker_pids_set is False
        # The pids were registered under id(it) and the loader removed them: nothing is left.
        with pytest.raises(ValueError):
            signal_handling._remove_worker_pids(id(it))
        assert [b.tolist() for b in it] == [[[0], [1]], [[2], [3]]]
    finally:
        it._shutdown_workers()


def test_check_on_a_freshly_started_plain_iterator():
    dl = DataLoader(list(range(4)), batch_size=2, num_workers=1, multiprocessing_context="fork")
    it = iter(dl)
    try:
        loader_mod.check_torch_internals(dl, it)
    finally:
        it._shutdown_workers()


def test_crash_safe_loader_runs_and_checks_once(unchecked):
    loader = _loader()
    assert [b.tolist() for b in loader] == [[[0], [1]], [[2], [3]], [[4], [5]]]
    assert loader_mod._internals_checked is True


def test_loader_fails_clearly_when_torch_lacks_an_internal(unchecked, monkeypatch):
    monkeypatch.delattr(signal_handling, "_remove_worker_pids")
    with pytest.raises(loader_mod.TorchInternalsError) as err:
        list(_loader())
    msg = str(err.value)
    version = ".".join(torch.__version__.split(".")[:2])
    assert (f"torch {version} changed DataLoader internals that vidgn.data.loader.CrashSafeLoader relies on "
            "(torch.utils.data._utils.signal_handling._remove_worker_pids)") in msg
    assert "pin torch to the tested range in pyproject.toml" in msg and "or update the loader" in msg
    assert loader_mod.TESTED_TORCH in msg


def _started_iter_stub(**drop_or_replace):
    """What a started multi-process iterator looks like to the loader, with changes."""
    attrs = dict(_workers=[SimpleNamespace(pid=12345, exitcode=None)], _worker_pids_set=True,
                 _shutdown_workers=lambda: None)
    attrs.update(drop_or_replace)
    return SimpleNamespace(**{k: v for k, v in attrs.items() if v is not _DROP})


_DROP = object()


@pytest.mark.parametrize("name, value, says", [
    ("_workers", _DROP, "missing"),
    ("_workers", [object()], "pid and exitcode"),
    ("_worker_pids_set", _DROP, "missing"),
    ("_worker_pids_set", False, "SIGCHLD"),
    ("_shutdown_workers", _DROP, "missing"),
    ("_shutdown_workers", True, "not callable"),
])
def test_check_names_each_changed_iterator_internal(name, value, says):
    dl = DataLoader(list(range(4)))
    loader_mod.check_torch_internals(dl, _started_iter_stub())  # the stub as is passes
    with pytest.raises(loader_mod.TorchInternalsError) as err:
        loader_mod.check_torch_internals(dl, _started_iter_stub(**{name: value}))
    msg = str(err.value)
    assert f"relies on (_MultiProcessingDataLoaderIter.{name})" in msg
    assert says in msg


def test_check_names_a_missing_dataloader_iterator_slot():
    dl = DataLoader(list(range(4)))
    del dl.__dict__["_iterator"]
    with pytest.raises(loader_mod.TorchInternalsError, match=r"relies on \(DataLoader._iterator\)"):
        loader_mod.check_torch_internals(dl)


def test_dead_worker_message_matches_the_loader_pattern():
    # The loader recognises a dead worker by PyTorch's message; a killed worker must produce it.
    dl = DataLoader(Stuck(), batch_size=2, num_workers=1, multiprocessing_context="fork", timeout=0.5)
    it = iter(dl)
    try:
        signal_handling._remove_worker_pids(id(it))  # off the SIGCHLD alarm, as the loader does
        it._worker_pids_set = False
        os.kill(it._workers[0].pid, signal.SIGKILL)
        it._workers[0].join(10)
        with pytest.raises(RuntimeError) as err:
            next(it)
        assert loader_mod._DEAD_WORKER.search(str(err.value)), str(err.value)
    finally:
        it._shutdown_workers()


def test_pinned_torch_range_is_the_tested_one():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    from packaging.requirements import Requirement

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(Requirement(d) for d in deps if Requirement(d).name == "torch")
    assert f"torch{torch_req.specifier}" == str(Requirement(loader_mod.TESTED_TORCH)), (
        "pyproject.toml's torch pin and vidgn.data.loader.TESTED_TORCH must name the same tested range")
    assert torch_req.specifier.contains(torch.__version__.split("+")[0]), (
        f"the installed torch {torch.__version__} is outside the pinned range {torch_req.specifier}")
