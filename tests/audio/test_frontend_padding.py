"""``FrontendConfig.pad_value`` is what each front end writes past a clip's end in a padded batch
(the value collators and packed inference pad with)."""

from __future__ import annotations

import pytest
import torch

from audioflex.audio.frontend import KaldiFbankConfig, build_frontend
from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.audio.frontend.passt import PasstMelConfig

CONFIGS = [
    KaldiFbankConfig(),
    KaldiFbankConfig(norm_mean=-5.5, norm_std=3.5, num_mel_bins=64),
    KaldiFbankConfig(normalize=False),
    LogMelConfig(),
    PasstMelConfig(),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.kind}")
def test_pad_value_is_what_the_front_end_writes_past_a_clip(config):
    sr = config.sample_rate
    gen = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(2, sr, generator=gen)  # 1 s and 0.4 s
    lengths = torch.tensor([sr, int(0.4 * sr)])
    wave[1, lengths[1]:] = 0
    spec, frames = build_frontend(config).eval()(wave, lengths)
    assert int(frames[1]) < int(frames[0]) == spec.shape[-1]
    past = spec[1, :, int(frames[1]):]
    assert past.numel() > 0
    torch.testing.assert_close(past, torch.full_like(past, config.pad_value), rtol=0, atol=1e-6)
    assert (spec[1, :, : int(frames[1])] - config.pad_value).abs().max() > 0.1  # real frames differ


def test_kaldi_pad_value_follows_the_normalisation():
    assert KaldiFbankConfig().pad_value == pytest.approx(0.4670, abs=1e-4)  # AudioSet stats (AST)
    assert KaldiFbankConfig(norm_mean=-5.5, norm_std=3.5).pad_value == pytest.approx(5.5 / 7.0)
    assert KaldiFbankConfig(normalize=False).pad_value == 0.0
