"""detect: plots list every class, draw the threshold and the reference events; 'nothing found' is said."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from audioflex.apps.detect import detect_files
from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.checkpoints import save_checkpoint
from audioflex.evaluate.events import PostProcessing
from audioflex.models.htsat import HTSAT

SR = 32000
LABELS = [f"class{i}" for i in range(8)]


def _ckpt(tmp_path):
    torch.manual_seed(0)
    args = dict(num_classes=8, num_mel_bins=16, spec_size=64, patch_size=4, embed_dim=16, depths=[2, 2],
                num_heads=[2, 4], window_size=4, drop_path=0.0)
    model = HTSAT(**args).eval()
    return save_checkpoint(tmp_path / "ck", model, frontend=LogMelConfig(n_mels=16), labels=LABELS,
                           model_name="htsat_mini", model_args=args)


def test_plot_legend_threshold_reference_and_nothing_found(tmp_path, monkeypatch):
    import matplotlib.figure

    ck = _ckpt(tmp_path)
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.05 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32), SR)
    ref = tmp_path / "ref.tsv"
    ref.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.5\t1.5\tclass3\n")
    seen = {}
    real = matplotlib.figure.Figure.savefig

    def capture(fig, *args, **kwargs):
        ax = fig.axes[1]
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        seen["hlines"] = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
        seen["xlabel"] = fig.axes[2].get_xlabel()
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    rep = detect_files([wav], ck, post=PostProcessing(thresholds=1.0), plot_dir=tmp_path / "plots", reference=ref)
    assert rep.plots[str(wav)].is_file()
    assert set(LABELS) <= set(seen["legend"]) and "threshold" in seen["legend"]  # every class of 8
    assert seen["hlines"] == [1.0] and "reference" in seen["xlabel"]
    assert rep.num_events == 0
    assert "no events found in 1 file(s) at threshold 1.0" in rep.nothing_found(PostProcessing(thresholds=1.0))
    found = detect_files([wav], ck, post=PostProcessing(thresholds=1e-6))
    assert found.num_events > 0 and found.nothing_found(PostProcessing(thresholds=1e-6)) is None
