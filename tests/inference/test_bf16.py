"""``bf16=True`` / ``--bf16``: the torch model under bfloat16 autocast through ``Pipeline`` and the CLI.

Bound: probabilities are in [0, 1] and bf16 keeps 8 significand bits (u = 2^-8); a tiny model's
logits move by a few dozen u times their scale (see tests/models/test_autocast.py), so
probabilities within 0.05 of float32 (the int8 bound) catches a wrong path, not rounding.
"""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch
from test_pipeline import LABELS, _one_error_line, ast_ckpt, elastic_ckpt, runner, tone  # noqa: F401

from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.checkpoints import save_checkpoint
from audioflex.cli import app
from audioflex.inference import Pipeline
from audioflex.models.autocast import AutocastModel
from audioflex.models.registry import create_model

PROB_BOUND = 0.05


def _wav(tmp_path, seconds, sr=16000):
    path = tmp_path / f"tone_{seconds}_{sr}.wav"
    sf.write(path, tone(seconds, sr), sr)
    return path


@pytest.mark.parametrize("ckpt", ["elastic_ckpt", "ast_ckpt"])
def test_bf16_pipeline_tags_like_float32(ckpt, request, tmp_path):
    path = request.getfixturevalue(ckpt)
    fp32, bf16 = Pipeline.from_checkpoint(path), Pipeline.from_checkpoint(path, bf16=True)
    assert isinstance(bf16.model, AutocastModel) and bf16.contract == fp32.contract
    wav = _wav(tmp_path, 3.3)
    want, got = fp32.clip_scores(wav), bf16.clip_scores(wav)
    assert got.dtype == torch.float32
    assert float((got - want).abs().max()) <= PROB_BOUND
    e32, t32 = fp32.embed_timestamps(wav, hop_ms=250.0)
    e16, t16 = bf16.embed_timestamps(wav, hop_ms=250.0)
    assert torch.equal(t32, t16) and e16.shape == e32.shape and torch.isfinite(e16).all()


def test_bf16_frame_scores_of_htsat(tmp_path):
    torch.manual_seed(0)
    kw = {"depths": (1, 1, 1, 1), "spec_size": 128, "window_size": 4, "drop_path": 0.0}
    model = create_model("htsat_mini", num_classes=len(LABELS), **kw).eval()
    path = tmp_path / "htsat"
    save_checkpoint(path, model, frontend=LogMelConfig(), labels=LABELS, model_name="htsat_mini",
                    model_args={"num_classes": len(LABELS), **kw})
    wav = _wav(tmp_path, 7.0, 32000)
    want = Pipeline.from_checkpoint(path).frame_scores(wav)
    got = Pipeline.from_checkpoint(path, bf16=True).frame_scores(wav)
    assert got.probs.shape == want.probs.shape and got.probs.dtype == torch.float32
    assert float((got.probs - want.probs).abs().max()) <= PROB_BOUND


def test_bf16_is_a_torch_option(elastic_ckpt):  # noqa: F811 (the fixture)
    with pytest.raises(ValueError, match="bf16 runs the torch model under autocast"):
        Pipeline.from_checkpoint(elastic_ckpt, runtime="onnx", bf16=True)


def test_tag_cli_bf16(elastic_ckpt, tmp_path):  # noqa: F811 (the fixture)
    wav = _wav(tmp_path, 2.0)
    r = runner.invoke(app, ["tag", str(wav), "-c", str(elastic_ckpt), "--json", "--bf16"])
    assert r.exit_code == 0, r.output
    fp32 = runner.invoke(app, ["tag", str(wav), "-c", str(elastic_ckpt), "--json"])
    got, want = (json.loads(x.stdout)["files"][str(wav)] for x in (r, fp32))
    assert len(got) == len(want)
    assert max(abs(a["score"] - b["score"]) for a, b in zip(sorted(got, key=lambda t: t["label"]),
                                                            sorted(want, key=lambda t: t["label"]))) <= PROB_BOUND
    bad = runner.invoke(app, ["tag", str(wav), "-c", str(elastic_ckpt), "--bf16", "--int8"])
    _one_error_line(bad, "--bf16", "--int8")
