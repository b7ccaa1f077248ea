"""Pipeline and the tag CLI: any length, any frame shift, streaming long files, errors."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.audio.stream import iter_pieces
from audioflex.checkpoints import save_checkpoint
from audioflex.cli import app
from audioflex.data.datasets import SpectrogramDataset, TrainCollator, WaveformDataset
from audioflex.data.records import ClipRecord, LabelSet
from audioflex.inference import Pipeline
from audioflex.models.registry import create_model
from audioflex.packing import collate_packed

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
    pad = pipe.frontend.config.pad_value
    with torch.no_grad():
        batch = collate_packed([spec[0, :, : frames[0]]], pad_value=pad)
        direct = torch.sigmoid(pipe.model(batch).clip_logits[0])
    assert torch.allclose(scores, direct, atol=1e-6)


def test_packed_scores_equal_the_training_validation_pass(tmp_path):
    """A packed model scores a clip at inference exactly as the training run's validation loader
    fed it: a clip whose frames do not fill its last patch column gets that column padded with the
    front end's pad value in both (it was 0.0 at inference, the normalised silence in training)."""
    frontend = KaldiFbankConfig(norm_mean=-5.5, norm_std=3.5)  # a dataset's own stats: pad value 0.79
    path = tmp_path / "elastic"
    save_checkpoint(path, tiny("elastic_ast_tiny"), frontend=frontend, labels=LABELS)
    pipe = Pipeline.from_checkpoint(path)
    records = []
    for i, seconds in enumerate((0.7, 1.0, 0.33)):  # 68, 98, 31 frames: all end in a partial column
        wav = tmp_path / f"c{i}.wav"
        sf.write(wav, tone(seconds, f=300.0 + 200 * i), 16000, subtype="FLOAT")
        records.append(ClipRecord(wav, labels=(LABELS[i],)))
    ds = SpectrogramDataset(
        WaveformDataset(records, LabelSet(LABELS), sample_rate=16000), frontend, min_frames=16
    )
    batch = TrainCollator(packed=True, train=False, pad_value=ds.pad_value)([ds[i] for i in range(3)])
    with torch.no_grad():
        loader = torch.sigmoid(pipe.model(batch.inputs).clip_logits)
        zero_pad = [collate_packed([ds[i][0]], pad_value=0.0) for i in range(3)]
        zero = torch.cat([torch.sigmoid(pipe.model(b).clip_logits) for b in zero_pad])
    waves = [torch.from_numpy(sf.read(r.path, dtype="float32")[0]) for r in records]
    scores = pipe.scores_batch(waves)
    by_clip = torch.empty_like(loader)
    by_clip[list(batch.index)] = loader  # batch row j is clip batch.index[j]
    assert torch.allclose(scores, by_clip, atol=1e-6)
    assert (scores - zero).abs().max() > 1e-3  # the padding matters: this test would see 0.0


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
    assert list(data["files"]) == [str(wav)] and len(data["files"][str(wav)]) == 2 and data["errors"] == {}
    assert data["files"][str(wav)][0]["label"] in LABELS
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
    import audioflex.audio.stream as inf

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


# ------------------------------------------------------------------------------- bad input
def _one_error_line(r, *needles):
    """exit 1, one error line on stderr naming the problem, no traceback."""
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.output + r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_tag_rejects_bad_top_k_and_frame_shift(elastic_ckpt, tmp_path):
    wav = tmp_path / "ok.wav"
    sf.write(wav, tone(2.0), 16000)
    for k in ("-1", "0"):
        r = runner.invoke(app, ["tag", str(wav), "-c", str(elastic_ckpt), "--top-k", k])
        _one_error_line(r, "--top-k", "at least 1")
    for shift in ("1000000", "0", "-5", "60"):
        r = runner.invoke(app, ["tag", str(wav), "-c", str(elastic_ckpt), "--frame-shift-ms", shift])
        _one_error_line(r, "--frame-shift-ms", "(0, 50]")
    r = runner.invoke(app, ["tag", str(wav), "-c", str(elastic_ckpt), "--frame-shift-ms", "50", "--top-k", "9"])
    assert r.exit_code == 0, r.output  # the bound itself is allowed; more labels than classes gives them all
    # the library refuses the same values with a ValueError naming the range
    pipe = Pipeline.from_checkpoint(elastic_ckpt)
    for k in (0, -1, 1.5):
        with pytest.raises(ValueError, match=r"top_k must be an integer >= 1"):
            pipe.tag(wav, top_k=k)
    assert len(pipe.tag(wav, top_k=np.int64(2))) == 2
    for shift in (1e6, 0.0, -10.0):
        with pytest.raises(ValueError, match=r"frame_shift_ms: .* outside \(0, 50\] ms"):
            Pipeline.from_checkpoint(elastic_ckpt, frame_shift_ms=shift)
    with pytest.raises(ValueError, match=r"outside \(0, 50\] ms"):
        Pipeline(pipe.model, KaldiFbankConfig(frame_shift_ms=1e6), LABELS)
    from audioflex.audio.frontend.logmel import LogMelConfig
    from audioflex.inference import check_frame_shift

    with pytest.raises(ValueError, match="fixed hop"):
        check_frame_shift(LogMelConfig(), 20.0)


def test_tag_json_lists_errors_like_detect(elastic_ckpt, tmp_path):
    wav = tmp_path / "ok.wav"
    sf.write(wav, tone(1.0), 16000)
    missing = tmp_path / "missing.wav"
    r = runner.invoke(app, ["tag", str(wav), str(missing), "-c", str(elastic_ckpt), "--json", "-k", "1"])
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert list(data["files"]) == [str(wav)] and len(data["files"][str(wav)]) == 1
    assert list(data["errors"]) == [str(missing)] and "no such file" in data["errors"][str(missing)]
    _one_error_line(r, "missing.wav", "no such file")


def test_symlink_loop_is_reported_as_a_loop(elastic_ckpt, tmp_path):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(tmp_path / "other.wav")
    (tmp_path / "other.wav").symlink_to(loop)
    r = runner.invoke(app, ["tag", str(loop), "-c", str(elastic_ckpt)])
    line = _one_error_line(r, "loop.wav", "symbolic link loop")
    assert "no such file" not in line


def test_truncated_and_too_short_files_are_tagged_with_a_warning(elastic_ckpt, tmp_path, caplog):
    full = tmp_path / "full.wav"
    sf.write(full, tone(2.0), 16000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + 2 * 10720])  # header: 2 s; data: 0.67 s
    short = tmp_path / "short.wav"
    sf.write(short, tone(8 / 16000), 16000)  # 8 samples
    pipe = Pipeline.from_checkpoint(elastic_ckpt)
    with caplog.at_level("WARNING"):
        assert len(pipe.tag(full, top_k=1)) == 1
    assert not caplog.records  # a complete file of normal length: no warning
    with caplog.at_level("WARNING"):
        assert len(pipe.tag(cut, top_k=1)) == 1 and len(pipe.tag(short, top_k=1)) == 1
    msgs = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(msgs) == 2, msgs
    assert "cut.wav" in msgs[0] and "truncated" in msgs[0] and "promises 2.000 s" in msgs[0]
    assert "holds 0.670 s" in msgs[0] and "using the 0.670 s it holds" in msgs[0]
    assert "short.wav" in msgs[1] and "too short" in msgs[1] and "8 samples" in msgs[1]
    assert "padded to one patch" in msgs[1]  # ElasticAST: one 16-frame patch
    # a fixed-window model pads short audio to its window anyway: only shorter than one
    # front-end window (25 ms) is flagged
    caplog.clear()
    ast = Pipeline(tiny("ast_tiny"), KaldiFbankConfig(target_length=128), LABELS)
    with caplog.at_level("WARNING"):
        ast.tag(short, top_k=1)
        ast.tag(full, top_k=1)
    msgs = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(msgs) == 1 and "short.wav" in msgs[0] and "25 ms front-end window" in msgs[0]


def test_checkpoint_saved_without_frontend_is_usable(tmp_path):
    from audioflex import hear
    from audioflex.checkpoints import load_checkpoint

    m = tiny("elastic_ast_tiny", num_mel_bins=32)
    ck = save_checkpoint(tmp_path / "nofe", m, labels=LABELS)
    loaded = load_checkpoint(ck)
    assert loaded.frontend is not None and loaded.frontend.config == KaldiFbankConfig(num_mel_bins=32)
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(1.0), 16000)
    r = runner.invoke(app, ["tag", str(wav), "-c", str(ck), "--json"])
    assert r.exit_code == 0, r.output
    assert hear.load_model(str(ck)).scene_embedding_size > 0
    a = save_checkpoint(tmp_path / "ast", tiny("ast_tiny", num_mel_bins=32))
    assert load_checkpoint(a).frontend.config == KaldiFbankConfig(num_mel_bins=32, target_length=128)
    assert Pipeline.from_checkpoint(a).piece_s == pytest.approx(1.28)


def test_labels_mismatch_names_the_checkpoint(elastic_ckpt, tmp_path):
    cfg = elastic_ckpt / "config.json"
    meta = json.loads(cfg.read_text())
    meta["labels"] = ["siren", "knock"]  # the model has 3 classes
    cfg.write_text(json.dumps(meta))
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(1.0), 16000)
    r = runner.invoke(app, ["tag", str(wav), "-c", str(elastic_ckpt)])
    _one_error_line(r, str(elastic_ckpt), "2 labels for a model with 3 classes")
