"""Training set-up pieces: mixed-precision settings and the run's step count."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from audioflex.train.builders import UNBOUNDED_STEPS, amp_settings, total_steps


def test_amp_settings() -> None:
    cpu = torch.device("cpu")
    assert amp_settings("no", cpu) == (None, None)
    assert amp_settings("auto", cpu) == (None, None)
    dtype, scaler = amp_settings("bf16", cpu)
    assert dtype is torch.bfloat16 and scaler is None
    with pytest.raises(ValueError, match="amp=fp16 needs a CUDA device"):
        amp_settings("fp16", cpu)
    with pytest.raises(ValueError, match=r"amp: use auto, no, bf16 or fp16 \(got 'fp8'\)"):
        amp_settings("fp8", cpu)


def test_total_steps() -> None:
    sampler = list(range(10))  # 10 batches per epoch
    cfg = SimpleNamespace(max_steps=None, epochs=3, optim=SimpleNamespace(grad_accum=2))
    assert total_steps(cfg, sampler) == 15
    assert total_steps(SimpleNamespace(max_steps=7, epochs=3, optim=cfg.optim), sampler) == 7
    with pytest.raises(ValueError, match="set max_steps, epochs or max_minutes"):
        total_steps(SimpleNamespace(max_steps=None, epochs=None, max_minutes=None, optim=cfg.optim), sampler)
    unbounded = SimpleNamespace(max_steps=None, epochs=None, max_minutes=5.0, optim=cfg.optim)
    assert total_steps(unbounded, sampler) == UNBOUNDED_STEPS
