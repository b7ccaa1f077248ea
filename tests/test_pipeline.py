"""Pipeline and the tag CLI: any length, any frame shift, streaming long files, errors."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.checkpoints import save_checkpoint
from audioflex.cli import app
from audioflex.inference import iter_pieces
from audioflex.models.registry import create_model
from audioflex.pipeline import Pipeline

runner = CliRunner()
LABELS = ["siren", "knock", "hum"]


def tiny(name, **kw):
    torch.manual_seed(0)
    args = dict(num_classes=3, embed_dim=32, depth=1, num_heads=2)
    if name.startswith("elastic"):
        args["max_time_patches"] = 8
    else:
        args["max_length"] = 128
    return create_model(name, **{**args, **kw})


@pytest.fixture
def elastic_ckpt(tmp_path):
    path = tmp_path / "elastic"
    save_checkpoint(path, tiny("elastic_ast_tiny"), frontend=KaldiFbankConfig(), labels=LABELS)
    return path


@pytest.fixture
def ast_ckpt(tmp_path):
    path = tmp_path / "ast"
    save_checkpoint(path, tiny("ast_tiny"), frontend=KaldiFbankConfig(target_length=128), labels=LABELS)
    return path


def tone(seconds, sr=16000, f=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_iter_pieces_file_and_tensor_agree(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(5.3), 16000, subtype="FLOAT")
    from_file = list(iter_pieces(wav, 16000, 2.0))
    from_tensor = list(iter_pieces(torch.from_numpy(tone(5.3)), 16000, 2.0))
    assert [p.start_s for p in from_file] == [0.0, 2.0, 4.0] == [p.start_s for p in from_tensor]
    for a, b in zip(from_file, from_tensor):
        assert torch.allclose(a.wave, b.wave)
    assert from_file[-1].num_samples == int(1.3 * 16000)


def test_elastic_short_clip_is_one_piece_equal_to_direct_model(elastic_ckpt):
    pipe = Pipeline.from_checkpoint(elastic_ckpt)
    assert pipe.piece_s == pytest.approx(8 * 16 * 0.01)
    wave = torch.from_numpy(tone(0.7))
    scores = pipe.clip_scores(wave)
    spec, frames = pipe.frontend(wave[None])
    from audioflex.packing import collate_packed

    with torch.no_grad():
        direct = torch.sigmoid(pipe.model(collate_packed([spec[0, :, : frames[0]]])).clip_logits[0])
    assert torch.allclose(scores, direct, atol=1e-6)


def test_elastic_any_frame_shift_and_long_input(elastic_ckpt, tmp_path):
    for shift in (10, 20, 40):
        pipe = Pipeline.from_checkpoint(elastic_ckpt, frame_shift_ms=shift)
        tags = pipe.tag(torch.from_numpy(tone(3.0)), top_k=2)
        assert len(tags) == 2 and all(0 <= t.score <= 1 for t in tags)
    # a long file is cut into pieces of what the time table covers and mean-aggregated
    wav = tmp_path / "long.wav"
    sf.write(wav, tone(30.0), 16000)
    pipe = Pipeline.from_checkpoint(elastic_ckpt, max_tokens=256)
    pieces = list(iter_pieces(wav, 16000, pipe.piece_s))
    assert len(pieces) == 24  # 30 s / 1.28 s
    with torch.no_grad():
        per_piece = pipe.scores_batch([p.wave for p in pieces])
    w = torch.tensor([p.num_samples for p in pieces], dtype=torch.float32)
    expect = (per_piece * (w / w.sum())[:, None]).sum(0)
    assert torch.allclose(pipe.clip_scores(wav), expect, atol=1e-5)
    pmax = Pipeline.from_checkpoint(elastic_ckpt, aggregate="max")
    assert torch.allclose(pmax.clip_scores(wav), per_piece.max(0).values, atol=1e-5)


def test_fixed_window_model_windows_and_resampling(ast_ckpt, tmp_path):
    pipe = Pipeline.from_checkpoint(ast_ckpt)
    assert pipe.piece_s == pytest.approx(1.28)
    short = pipe.clip_scores(torch.from_numpy(tone(0.5)))
    assert short.shape == (3,) and torch.isfinite(short).all()
    wav = tmp_path / "a44.wav"
    sf.write(wav, tone(4.0, sr=44100), 44100)  # resampled to 16 kHz on load
    a = pipe.clip_scores(wav)
    b = pipe.clip_scores(torch.from_numpy(tone(4.0, sr=44100)), sample_rate=44100)
    assert torch.allclose(a, b, atol=1e-4)


def test_tag_cli_text_json_and_errors(elastic_ckpt, tmp_path):
    wav = tmp_path / "ok.wav"
    sf.write(wav, tone(1.5), 16000)
    r = runner.invoke(app, ["tag", str(wav), "--checkpoint", str(elastic_ckpt), "--json", "--top-k", "2"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert list(data) == [str(wav)] and len(data[str(wav)]) == 2
    assert data[str(wav)][0]["label"] in LABELS
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage")
    r = runner.invoke(app, ["tag", str(bad), "--checkpoint", str(elastic_ckpt)])
    assert r.exit_code == 1
    assert "bad.wav" in r.stderr and "Traceback" not in r.output + r.stderr
    r = runner.invoke(app, ["tag", str(wav), "--checkpoint", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "not a checkpoint directory" in r.stderr


def test_cli_version_models_help_convert(tmp_path, fixtures_dir):
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "audioflex" in r.stdout
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0
    names = {m["name"]: m["parameters"] for m in json.loads(r.stdout)}
    assert names["ast_base"] > 80e6 and "elastic_ast_tiny" in names
    for cmd in (["--help"], ["tag", "--help"], ["convert", "--help"], ["bench", "--help"]):
        assert runner.invoke(app, cmd).exit_code == 0
    out = tmp_path / "ck"
    r = runner.invoke(
        app, ["convert", "elasticast", str(fixtures_dir / "elasticast.safetensors"), str(out), "-o", "num_heads=4"]
    )
    assert r.exit_code == 0, r.output
    assert (out / "model.safetensors").is_file() and json.loads((out / "config.json").read_text())["model_args"][
        "attn_scale"
    ] == 1.0
    r = runner.invoke(app, ["convert", "nope", "x", str(tmp_path / "y")])
    assert r.exit_code == 1 and "unknown checkpoint format" in r.stderr


def test_long_file_is_streamed_in_bounded_pieces(elastic_ckpt, tmp_path, monkeypatch):
    import audioflex.inference as inf

    wav = tmp_path / "long.wav"
    sf.write(wav, tone(20.0), 16000)
    requested = []
    real = inf.load_audio

    def spy(path, sample_rate=None, mono=True, offset=0.0, duration=None):
        requested.append(duration)
        return real(path, sample_rate, mono, offset, duration)

    monkeypatch.setattr(inf, "load_audio", spy)
    pipe = Pipeline.from_checkpoint(elastic_ckpt, frame_shift_ms=20)
    pipe.clip_scores(wav)
    assert requested and all(d is not None and d <= pipe.piece_s for d in requested)
    assert len(requested) == 8  # 20 s in pieces of 2.56 s


def test_pipeline_embed_scene_and_timestamps(elastic_ckpt, tmp_path):
    pipe = Pipeline.from_checkpoint(elastic_ckpt)
    wav = tmp_path / "e.wav"
    sf.write(wav, tone(2.5), 16000, subtype="FLOAT")
    scene = pipe.embed(wav)
    assert scene.shape == (pipe.embedding_model().scene_embedding_size,)
    emb, ts = pipe.embed_timestamps(wav, hop_ms=100)
    assert emb.shape == (ts.shape[0], pipe.embedding_model(hop_ms=100).timestamp_embedding_size)
    assert torch.allclose(ts, torch.arange(ts.shape[0]) * 100.0) and ts[-1] <= 2500
    same, _ = pipe.embed_timestamps(torch.from_numpy(tone(2.5)), hop_ms=100)
    assert torch.allclose(emb, same, atol=1e-5)
