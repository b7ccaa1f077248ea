"""Every family runs under bf16 autocast (AMP-ready): forward and backward, outputs close to fp32.

Bound: bf16 keeps 8 significand bits (unit roundoff u = 2^-8); a tiny model's output passes through
a few dozen rounded products and sums, so |bf16 - fp32| <= 32 u max|fp32| (= 0.125 max|fp32|) is
loose enough for any CPU kernel and still catches a wrong dtype path or a NaN.
"""

from __future__ import annotations

import pytest
import torch

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
