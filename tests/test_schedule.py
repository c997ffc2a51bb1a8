"""LR scaling and schedules: the Non-local step schedule and cosine with warm-up."""
import pytest

from vidgn.training.schedule import lr_factor, scaled_lr


def test_linear_scaling_by_total_batch():
    assert scaled_lr(0.01, 64) == pytest.approx(0.01)  # 8 GPUs x 8 clips
    assert scaled_lr(0.01, 32) == pytest.approx(0.005)  # 8 GPUs x 4 clips
    with pytest.raises(ValueError):
        scaled_lr(0.01, 0)


def test_nonlocal_step_schedule_at_150k_and_300k_of_400k():
    total = 400_000
    assert lr_factor(149_999, total) == 1.0
    assert lr_factor(150_000, total) == pytest.approx(0.1)
    assert lr_factor(299_999, total) == pytest.approx(0.1)
    assert lr_factor(300_000, total) == pytest.approx(0.01)
    # the same fractions on a short run
    assert lr_factor(37, 100) == 1.0 and lr_factor(38, 100) == pytest.approx(0.1)


def test_cosine_with_warmup():
    total, warm = 100, 10
    assert lr_factor(0, total, "cosine", warmup_steps=warm, warmup_start_factor=0.1) == pytest.approx(0.1)
    assert lr_factor(5, total, "cosine", warmup_steps=warm, warmup_start_factor=0.1) == pytest.approx(0.55)
    assert lr_factor(10, total, "cosine", warmup_steps=warm) == pytest.approx(1.0)
    assert lr_factor(55, total, "cosine", warmup_steps=warm) == pytest.approx(0.5)
    assert lr_factor(100, total, "cosine", warmup_steps=warm) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown LR schedule"):
        lr_factor(0, 10, "linear")
