"""Conv patch projection that stays float32 under autocast."""

from __future__ import annotations

import torch
from torch import nn


class PatchConv(nn.Conv2d):
    """``nn.Conv2d`` patch projection ``[B, 1, F, T] -> [B, D, F', T']`` computed in float32 even
    inside ``torch.autocast`` (its output is float32; the blocks after it still run in the autocast
    dtype). Same parameters and state-dict keys as ``nn.Conv2d``.

    Why: torch 2.13's CPU bfloat16 ``conv2d`` returns wrong values or NaN when the output has a single
    time column (e.g. AST's 16-frame HEAR window: ``Conv2d(1, D, 16, stride 10)`` on ``[B, 1, 128, 16]``).
    One patch convolution is a small share of a transformer's cost, so float32 costs little.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())
