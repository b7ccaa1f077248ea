"""Every family runs under bf16 autocast (AMP-ready): forward and backward, outputs close to fp32.

Bound: bf16 keeps 8 significand bits (unit roundoff u = 2^-8); a tiny model's output passes through
a few dozen rounded products and sums, so |bf16 - fp32| <= 32 u max|fp32| (= 0.125 max|fp32|) is
loose enough for any CPU kernel and still catches a wrong dtype path or a NaN.
"""

from __future__ import annotations

import pytest
import torch

from audioflex.layers.patch import PatchConv
from audioflex.models.autocast import AutocastModel
from audioflex.models.registry import create_model
from audioflex.packing import collate_packed

BOUND = 32 * 2.0**-8


def _close(fp32: torch.Tensor, bf16: torch.Tensor) -> None:
    assert torch.isfinite(bf16).all()
    scale = float(fp32.abs().max())
    assert float((bf16.float() - fp32).abs().max()) <= BOUND * scale


@pytest.mark.parametrize("pool", ["attn", "mean"])
def test_packed_elastic_ast_under_bf16_autocast(pool: str) -> None:
    torch.manual_seed(0)
    m = create_model("elastic_ast_tiny", embed_dim=64, depth=2, num_heads=4, num_classes=5, num_mel_bins=32,
                     max_time_patches=16, pool=pool, frame_head=True, token_drop=0.0)
    batch = collate_packed([torch.randn(32, t) for t in (40, 96, 17)], patch=16)
    ref = m(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(batch)
        (out.clip_logits.float().sum() + out.frame_logits.float().sum()).backward()
    _close(ref.clip_logits.detach(), out.clip_logits.detach())
    _close(ref.embedding.detach(), out.embedding.detach())
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("name", ["ast_tiny", "htsat_tiny", "passt_tiny"])
def test_grid_models_under_bf16_autocast(name: str) -> None:
    torch.manual_seed(0)
    kw = {"depth": 2} if name != "htsat_tiny" else {"depths": (1, 1), "num_heads": (2, 4), "drop_path": 0.0}
    m = create_model(name, num_classes=5, **kw).eval()
    bins = 64 if name == "htsat_tiny" else 128
    spec = torch.randn(2, bins, 200)
    with torch.no_grad():
        ref = m(spec)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(spec)
    _close(ref.clip_logits, out.clip_logits)


# ------------------------------------------------------------------ AutocastModel (bf16 inference)
def _grid_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    kw = {"depth": 2} if name != "htsat_tiny" else {"depths": (1, 1), "num_heads": (2, 4), "drop_path": 0.0}
    return create_model(name, num_classes=5, **kw).eval()


@pytest.mark.parametrize("name", ["ast_tiny", "htsat_tiny", "passt_tiny"])
def test_autocast_model_keeps_the_contract_and_returns_float32(name: str) -> None:
    m = _grid_model(name)
    wrapped = AutocastModel(m)
    assert wrapped.contract == m.contract
    bins = m.contract.num_mel_bins
    spec, frames = torch.randn(2, bins, 200), torch.tensor([200, 150])
    with torch.no_grad():
        ref = m(spec, frames, return_layers=(0,))
        out = wrapped(spec, frames, return_layers=(0,))
        pooled = wrapped.pool_hidden(out.hidden_states[0])
    for field in ("clip_logits", "embedding"):
        got = getattr(out, field)
        assert got.dtype == torch.float32, field
        _close(getattr(ref, field), got)
    assert out.hidden_states[0].dtype == torch.float32 and pooled.dtype == torch.float32
    assert pooled.shape == m.pool_hidden(ref.hidden_states[0]).shape
    if m.contract.step_features:
        with torch.no_grad():
            logits, steps, _ = wrapped.forward_steps(spec, frames)
            ref_logits, _, _ = m.forward_steps(spec, frames)
        assert logits.dtype == steps.dtype == torch.float32
        _close(ref_logits, logits)
    else:
        with pytest.raises(ValueError, match="no step features"):
            wrapped.forward_steps(spec, frames)


def test_autocast_model_runs_packed_batches() -> None:
    torch.manual_seed(0)
    m = create_model("elastic_ast_tiny", embed_dim=64, depth=2, num_heads=4, num_classes=5, num_mel_bins=32,
                     max_time_patches=16, frame_head=True, token_drop=0.0).eval()
    batch = collate_packed([torch.randn(32, t) for t in (40, 96, 17)], patch=16)
    with torch.no_grad():
        ref, out = m(batch), AutocastModel(m)(batch)
    assert out.clip_logits.dtype == out.frame_logits.dtype == torch.float32
    _close(ref.clip_logits, out.clip_logits)


def test_autocast_model_refuses_what_is_not_an_audioflex_model() -> None:
    with pytest.raises(TypeError, match="ModelContract"):
        AutocastModel(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="autocast dtype"):
        AutocastModel(_grid_model("ast_tiny"), torch.float64)


def test_patch_conv_stays_float32_under_autocast() -> None:
    """A 16-frame AST window has one patch column; CPU bf16 conv2d (torch 2.13) gets that wrong (NaN),
    so the patch projection computes in float32: bit-identical to the float32 conv."""
    torch.manual_seed(0)
    conv = PatchConv(1, 24, 16, stride=10)
    x = torch.randn(3, 1, 128, 16)
    with torch.no_grad():
        ref = conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = conv(x)
    assert got.dtype == torch.float32
    assert torch.equal(got, ref)
    m = _grid_model("ast_tiny")
    spec = torch.randn(2, 128, 16)
    with torch.no_grad():
        _close(m(spec).clip_logits, AutocastModel(m)(spec).clip_logits)
