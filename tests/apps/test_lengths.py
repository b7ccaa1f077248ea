"""Length/frame-shift evaluation: a packed model sees short clips at their native length, a fixed
model sees them padded; longer clips are cropped for both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audioflex.models  # noqa: F401  (registers the families)
from audioflex.apps import lengths as lengths_app
from audioflex.audio.frontend import KaldiFbankConfig
from audioflex.checkpoints.io import save_checkpoint
from audioflex.evaluate.lengths import EvalItem, fit_length
from audioflex.models.registry import create_model

SR = 16000


def test_fit_length_pads_only_when_asked() -> None:
    w = torch.ones(100)
    assert fit_length(w, 40).numel() == 40
    assert fit_length(w, 400).numel() == 400 and fit_length(w, 400)[100:].abs().sum() == 0
    assert fit_length(w, 400, pad=False).numel() == 100
    assert fit_length(w, None, pad=False).numel() == 100


@pytest.mark.parametrize("packed", [True, False])
def test_short_clips_stay_native_for_packed_models_only(tmp_path: Path, monkeypatch, packed: bool) -> None:
    torch.manual_seed(0)
    if packed:
        model = create_model("elastic_ast_tiny", num_classes=2, embed_dim=32, depth=1, num_heads=2, num_mel_bins=32)
    else:
        model = create_model(
            "ast_tiny", num_classes=2, embed_dim=32, depth=1, num_heads=2, num_mel_bins=32, max_length=300
        )
    ck = save_checkpoint(tmp_path / "ck", model, frontend=KaldiFbankConfig(num_mel_bins=32), labels=["a", "b"])
    items = []
    for i, seconds in enumerate((0.5, 3.0)):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(round(seconds * SR)).astype("float32") * 0.1, SR)
        items.append(EvalItem(path, (i,)))
    seen: list[list[int]] = []
    real_score = lengths_app._score

    def spy(pipe, waves):
        seen.append([w.numel() for w in waves])
        return real_score(pipe, waves)

    monkeypatch.setattr(lengths_app, "_score", spy)
    report = lengths_app.evaluate_lengths(ck, items, lengths_s=(None, 2.0))
    assert len(report.rows) == 2
    native, at_2s = seen
    assert native == [8000, 48000]
    assert at_2s == ([8000, 32000] if packed else [32000, 32000])
