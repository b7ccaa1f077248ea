"""Multi-head self-attention on flat packed tokens, with pluggable varlen backends.

Tokens of several clips are concatenated into ``x [N_total, D]``; ``cu_seqlens`` (cumulative
lengths, ``[B + 1]``) says where each clip starts and ends. Attention is only allowed inside a clip.

Backends (all compute the same thing; tests check they agree):
- ``loop``: ``scaled_dot_product_attention`` once per segment, or once per run of consecutive
  equal-length segments (fastest on CPU, forward+backward).
- ``dense``: one SDPA call with a boolean block-diagonal mask (the reference formulation).
- ``flex``: ``flex_attention`` with a document block mask (CUDA; no CPU backward in torch).
- ``auto``: ``flex`` on CUDA, ``loop`` elsewhere.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

BACKENDS = ("auto", "loop", "dense", "flex")


@dataclass
class SeqInfo:
    """What a varlen attention kernel needs, computed by the collator (never in ``forward``).

    Attributes:
        cu_seqlens: ``[B + 1]`` int32 tensor of segment boundaries.
        cu_seqlens_list: the same as Python ints.
        max_seqlen: the longest segment.
        segment_ids: ``[N_total]`` int64 segment index of each token.
        block_mask: a flex-attention block mask (built lazily for the ``flex`` backend).
    """

    cu_seqlens: torch.Tensor
    cu_seqlens_list: tuple[int, ...]
    max_seqlen: int
    segment_ids: torch.Tensor
    block_mask: Any = None

    @staticmethod
    def from_lengths(lengths: list[int] | tuple[int, ...], device: torch.device | str = "cpu") -> SeqInfo:
        """Build from per-segment token counts (host side)."""
        cu = [0]
        for n in lengths:
            cu.append(cu[-1] + int(n))
        seg = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(list(lengths)))
        return SeqInfo(
            cu_seqlens=torch.tensor(cu, dtype=torch.int32, device=device),
            cu_seqlens_list=tuple(cu),
            max_seqlen=max(lengths) if lengths else 0,
            segment_ids=seg.to(device),
        )

    @property
    def lengths(self) -> tuple[int, ...]:
        cu = self.cu_seqlens_list
        return tuple(cu[i + 1] - cu[i] for i in range(len(cu) - 1))


def equal_length_runs(cu_seqlens: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """``(start, length, count)`` for each run of consecutive equal-length segments."""
    runs: list[tuple[int, int, int]] = []
    for i in range(len(cu_seqlens) - 1):
        start, length = cu_seqlens[i], cu_seqlens[i + 1] - cu_seqlens[i]
        if runs and runs[-1][1] == length:
            runs[-1] = (runs[-1][0], length, runs[-1][2] + 1)
        else:
            runs.append((start, length, 1))
    return runs


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``auto`` to the fastest backend for ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "flex" if device.type == "cuda" else "loop"
    return backend


def _flex_block_mask(info: SeqInfo, n: int, device: torch.device) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    seg = info.segment_ids

    def document(b, h, q_idx, kv_idx):  # noqa: ANN001
        return seg[q_idx] == seg[kv_idx]

    return create_block_mask(document, B=None, H=None, Q_LEN=n, KV_LEN=n, device=device)


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    info: SeqInfo,
    *,
    backend: str = "auto",
    scale: float | None = None,
) -> torch.Tensor:
    """Block-diagonal attention over packed segments.

    Args:
        q, k, v: ``[H, N_total, Dh]``.
        info: segment boundaries of the packed tokens.
        backend: one of ``BACKENDS``.
        scale: logit scale (default ``1/sqrt(Dh)``).

    Returns:
        ``[H, N_total, Dh]``.
    """
    backend = resolve_backend(backend, q.device)
    if backend == "loop":
        h, _, dh = q.shape
        outs = []
        for start, length, count in equal_length_runs(info.cu_seqlens_list):
            end = start + length * count
            # consecutive segments of one length go through a single batched kernel call
            qs, ks, vs = (t[:, start:end].reshape(h, count, length, dh) for t in (q, k, v))
            out = F.scaled_dot_product_attention(qs, ks, vs, scale=scale)
            outs.append(out.reshape(h, count * length, dh))
        return torch.cat(outs, dim=1) if len(outs) != 1 else outs[0]
    if backend == "dense":
        seg = info.segment_ids
        mask = seg[:, None] == seg[None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if info.block_mask is None:
        info.block_mask = _flex_block_mask(info, q.shape[1], q.device)
    out = _flex_kernel(q.device.type)(q[None], k[None], v[None], block_mask=info.block_mask, scale=scale)
    return out[0]


@functools.cache
def _flex_kernel(device_type: str) -> Any:
    """``flex_attention``, compiled on CUDA (fused kernel); eager elsewhere (tests, CPU)."""
    from torch.nn.attention.flex_attention import flex_attention

    if device_type == "cuda":
        return torch.compile(flex_attention, dynamic=True)

    def eager(*args: Any, **kwargs: Any) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            return flex_attention(*args, **kwargs)

    return eager


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection.

    ``forward(x [B, N, D])`` attends over all N tokens of each row; ``forward(x [N_total, D], info)``
    attends within the packed segments of ``info``. ``attn_scale`` overrides ``1/sqrt(Dh)`` (the
    official ElasticAST used 1.0 — a bug kept only as a compat option).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        attn_scale: float | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = attn_scale
        self.backend = backend
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, info: SeqInfo | None = None) -> torch.Tensor:
        """``x [B, N, D]`` (info None) or ``[N_total, D]`` (packed) -> same shape."""
        h, dh = self.num_heads, self.head_dim
        if info is None:
            b, n, d = x.shape
            qkv = self.qkv(x).view(b, n, 3, h, dh).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
            return self.proj(out.transpose(1, 2).reshape(b, n, d))
        n, d = x.shape
        qkv = self.qkv(x).view(n, 3, h, dh).permute(1, 2, 0, 3)  # [3, H, N, Dh]
        out = varlen_attention(qkv[0], qkv[1], qkv[2], info, backend=self.backend, scale=self.scale)
        return self.proj(out.transpose(0, 1).reshape(n, d))

    def masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Packed tokens ``x [N, D]`` attending under a boolean ``mask [N, N]`` (True: may attend)
        -> ``[N, D]``: the tensor-only form of the packed path (no host integers; ONNX export)."""
        n, d = x.shape
        qkv = self.qkv(x).view(n, 3, self.num_heads, self.head_dim).permute(1, 2, 0, 3)  # [3, H, N, Dh]
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask, scale=self.scale)
        return self.proj(out.transpose(0, 1).reshape(n, d))
