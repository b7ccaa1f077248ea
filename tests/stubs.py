"""Test doubles shared by the test files (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


class IdentityFrontend(nn.Module):
    """Identity 'spectrogram': one frame per sample (hop 1), F = 1; padding stays 0."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(hop_length=1)
        self.sample_rate, self.hop_s = 100, 0.01

    def forward(self, wave, lengths=None):
        lengths = lengths if lengths is not None else torch.full((wave.shape[0],), wave.shape[1])
        return wave[:, None, :], lengths
