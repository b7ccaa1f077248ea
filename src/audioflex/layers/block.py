"""Pre-norm transformer block: ``x + DropPath(Attn(LN(x)))``, then ``x + DropPath(MLP(LN(x)))``."""

from __future__ import annotations

import torch
from torch import nn

from audioflex.layers.attention import Attention, SeqInfo
from audioflex.layers.mlp import DropPath, Mlp


class Block(nn.Module):
    """ViT block on ``[B, N, D]`` rows, or on packed ``[N_total, D]`` tokens with a ``SeqInfo``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        attn_scale: float | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_scale=attn_scale, backend=backend)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, info: SeqInfo | None = None) -> torch.Tensor:
        """``[B, N, D]`` or packed ``[N_total, D]`` -> same shape."""
        if info is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        groups, n = info.segment_ids, len(info.cu_seqlens_list) - 1
        x = x + self.drop_path(self.attn(self.norm1(x), info), groups, n)
        return x + self.drop_path(self.mlp(self.norm2(x)), groups, n)


def init_xavier_weights(module: nn.Module) -> None:
    """Transformer initialisation for training from scratch (``model.apply(init_xavier_weights)``):
    Xavier-uniform Linear weights with zero biases (the original ViT's and MAE's choice), unit/zero
    LayerNorms. Unlike a fixed std of 0.02 - which is Xavier's scale only at width ~768 - it keeps
    activations and gradients at unit scale for the narrow models that are trained on a CPU."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def small_init_(linear: nn.Linear, std: float = 0.02) -> None:
    """A classifier's initialisation: small truncated-normal weights (logits near 0, loss near
    ln C) and zero bias. Not exactly zero: a zero head passes no gradient to the backbone at first
    and measurably slowed learning from scratch."""
    nn.init.trunc_normal_(linear.weight, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def head_init_(linear: nn.Linear, gain: float = 0.5) -> None:
    """A from-scratch classifier's initialisation: Xavier-uniform weights times ``gain`` and a zero
    bias. Logits start small (the loss is within ~0.1 of ln C), yet the head passes the backbone
    a gradient at the tokens' scale: with :func:`small_init_` (std 0.02, ~6x smaller at width 128)
    a packed model on a keyword set learned measurably slower (loss 2.13 vs 1.93 after 300 steps)."""
    nn.init.xavier_uniform_(linear.weight, gain=gain)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def init_vit_weights(module: nn.Module) -> None:
    """ViT initialisation (``model.apply(init_vit_weights)``): truncated-normal Linear weights
    (std 0.02) with zero biases, unit/zero LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
