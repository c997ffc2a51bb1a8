"""Precise BN: equal-weight average of batch statistics, modes restored, no-op without BN."""
import logging

import pytest
import torch
from torch import nn

from vidgn.models import I3DResNet, update_bn_stats
from vidgn.models.norms import is_batch_norm


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(norm="bn", **kw):
    return I3DResNet(depth=18, num_classes=4, norm=norm, base_channels=8, groups=4, **kw)


def batches(n, seed=0, b=4):
    g = torch.Generator().manual_seed(seed)
    # Batches with different means, so that an unweighted or momentum average would differ.
    return [torch.randn(b, 3, 8, 32, 32, generator=g) * (1 + i) + i for i in range(n)]


@pytest.mark.parametrize("kw", [{}, {"bn_clips": 2}], ids=["bn", "bn_clips"])
def test_stem_statistics_are_the_average_over_batches(kw):
    torch.manual_seed(0)
    model = tiny(**kw).eval()
    data = batches(3)
    used = update_bn_stats(model, iter(data), num_batches=3)
    assert used == 3
    # The stem norm sees conv1's output directly: its population statistics are the equal-weight
    # average of the per-batch mean and (unbiased, whole-batch) variance of that output.
    with torch.no_grad():
        outs = [model.conv1.conv(x) for x in data]  # (B, C, T, H, W) each
    mean = torch.stack([o.mean(dim=(0, 2, 3, 4)) for o in outs]).mean(0)
    var = torch.stack([o.var(dim=(0, 2, 3, 4)) for o in outs]).mean(0)
    torch.testing.assert_close(model.conv1.norm.running_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.conv1.norm.running_var, var, atol=1e-4, rtol=1e-5)
    assert not model.training and not any(m.training for m in model.modules())
    assert all(m.momentum == 0.1 for m in model.modules() if is_batch_norm(m))


def test_every_bn_layer_updated_and_train_mode_restored():
    model = tiny().train()
    model.dropout.eval()  # a mixed mode must come back exactly
    before = {n: b.clone() for n, b in model.named_buffers() if n.endswith("running_var")}
    data = batches(5)
    consumed = []

    def gen():
        for x in data:
            consumed.append(1)
            yield x

    assert update_bn_stats(model, gen(), num_batches=2) == 2
    assert len(consumed) == 2  # stops after num_batches
    after = dict(model.named_buffers())
    assert all(not torch.equal(before[n], after[n]) for n in before)
    assert model.training and model.conv1.norm.training and not model.dropout.training


def test_fewer_batches_than_asked(caplog):
    model = tiny()
    with caplog.at_level(logging.WARNING, logger="vidgn.models.precise_bn"):
        assert update_bn_stats(model, batches(2), num_batches=10) == 2
    assert "asked for 10 batches" in caplog.text


@pytest.mark.parametrize("norm", ["gn", "ln", "in", "frozen_bn"])
def test_no_op_without_trainable_bn(norm, caplog):
    caplog.set_level(logging.ERROR)
    model = tiny(norm=norm)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def must_not_be_read():
        raise AssertionError("batches consumed although the model has no BN to update")
        yield

    assert update_bn_stats(model, must_not_be_read(), num_batches=4) == 0
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k])


def test_failed_pass_restores_statistics_and_mode():
    model = tiny().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def broken():
        yield torch.randn(2, 3, 8, 32, 32)
        yield torch.randn(2, 5, 8, 32, 32)  # wrong channel count: conv1 raises

    with pytest.raises(RuntimeError):
        update_bn_stats(model, broken(), num_batches=2)
    assert not model.training
    for k in ("conv1.norm.running_mean", "res5.res_blocks.1.branch2.norm_b.running_var"):
        torch.testing.assert_close(model.state_dict()[k], before[k])


def test_sync_bn_layers_are_updated_too():
    model = tiny(norm="sync_bn")
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert update_bn_stats(model, batches(2), num_batches=2) == 2
    assert not torch.equal(model.conv1.norm.running_mean, torch.zeros(8))


# ---- in training: which batches, and across processes -------------------------------------------

def test_precise_bn_draws_new_batches_each_epoch_and_shards_them_by_rank(synthetic_dataset):
    """Before, every validation recomputed the statistics from the same first batches, and every
    rank from the same ones. Now each epoch draws anew, and the ranks split the list."""
    from types import SimpleNamespace

    from test_datamodule import make_dm
    from vidgn.training.callbacks import PreciseBN

    dm = make_dm(synthetic_dataset)
    dm.setup("fit")

    def videos(epoch, rank, world=2):
        trainer = SimpleNamespace(datamodule=dm, world_size=world, global_rank=rank, current_epoch=epoch)
        return [i for batch in PreciseBN._loader(trainer) for i in batch["video_index"].tolist()]

    n = len(dm.entries("train"))
    for epoch in (0, 1):
        ranks = [videos(epoch, r) for r in (0, 1)]
        assert not set(ranks[0]) & set(ranks[1]) and len(ranks[0]) + len(ranks[1]) == n
    assert videos(0, 0) != videos(1, 0)
    assert videos(1, 0) == videos(1, 0)  # a function of the seed and epoch


def _average_worker(rank, world, init_file, out):
    import torch.distributed as dist

    from vidgn.training.callbacks import average_bn_stats_across_ranks

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        bn = nn.BatchNorm3d(2)
        bn.running_mean.copy_(torch.tensor([1.0, -2.0]) * (rank + 1))
        bn.running_var.copy_(torch.tensor([0.5, 3.0]) * (rank + 1))
        average_bn_stats_across_ranks(bn)
        torch.save({"mean": bn.running_mean, "var": bn.running_var}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_precise_bn_statistics_are_averaged_across_ranks(tmp_path):
    """The statistics of the union of both ranks' batches: the mean of the means, and the mean of
    the variances plus the variance of the means."""
    import torch.multiprocessing as mp

    mp.spawn(_average_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    means = torch.stack([torch.tensor([1.0, -2.0]) * k for k in (1, 2)])
    variances = torch.stack([torch.tensor([0.5, 3.0]) * k for k in (1, 2)])
    want_mean = means.mean(0)
    want_var = variances.mean(0) + ((means - want_mean) ** 2).mean(0)
    for r in (0, 1):
        got = torch.load(tmp_path / f"rank{r}.pt")
        torch.testing.assert_close(got["mean"], want_mean)
        torch.testing.assert_close(got["var"], want_var)
