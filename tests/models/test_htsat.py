"""HTS-AT: LogMel front end, model, converter — parity with the official implementation's fixtures
(shared/fixtures/README.md §3) plus padding, folding and training behaviour."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from audioflex.audio.frontend.base import build_frontend
from audioflex.audio.frontend.logmel import LogMel, LogMelConfig, slaney_mel_filters
from audioflex.audio.stream import Piece
from audioflex.checkpoints import load_checkpoint, save_checkpoint
from audioflex.checkpoints.convert.base import ConversionError
from audioflex.checkpoints.convert.htsat import check_mel_matrix, convert_htsat, htsat_model_args, htsat_state_dict
from audioflex.cli import app
from audioflex.inference import Pipeline
from audioflex.models.htsat import HTSAT, fold_spectrogram, unfold_image
from audioflex.models.registry import create_model
from conditioning import one_ulp_perturbations
from fixture_paths import FIXTURES_DIR

FIX = FIXTURES_DIR

CASES = [("wave10", "out10", False), ("wave4", "out4", False), ("wave4", "out4_infer", True)]


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(str(FIX / "htsat_io.safetensors"))


@pytest.fixture(scope="module")
def ref_sd() -> dict[str, torch.Tensor]:
    return load_file(str(FIX / "htsat.safetensors"))


@pytest.fixture(scope="module")
def converted():
    return convert_htsat(FIX / "htsat.safetensors", stretch_short=True)


def _model(converted, **over) -> HTSAT:
    m = create_model(converted.model_name, **{**converted.model_args, **over}).eval()
    m.load_state_dict(converted.state_dict, strict=True)
    return m


def _tol(ref: torch.Tensor) -> float:
    return 1e-4 * max(1.0, ref.abs().max().item())


# ------------------------------------------------------------------------------ front end
def test_mel_filters_match_stored_librosa_matrix(ref_sd):
    mel = torch.from_numpy(slaney_mel_filters(32000, 1024, 64, 50.0, 14000.0)).float()
    assert (mel.T - ref_sd["sed_model.logmel_extractor.melW"]).abs().max() < 1e-7


@pytest.mark.parametrize("wave,out", [("wave10", "out10"), ("wave4", "out4")])
def test_logmel_parity(io, wave, out):
    spec, frames = LogMel()(io[wave])
    ref = io[f"{out}.logmel"][:, 0].transpose(1, 2)  # [B, 1, T, F] -> [B, F, T]
    assert spec.shape == ref.shape
    assert frames.tolist() == [ref.shape[-1]] * ref.shape[0]
    assert (spec - ref).abs().max() <= 1e-3


def test_logmel_parity_survives_other_rounding(io):
    """The reference's DFT is a float32 conv (ours: torch.stft), 3.3e-4 dB apart (fixtures README §3).
    These clips are far above the 1e-10 floor, so re-rounding (one ulp of input, one thread) moves
    the dB values by no more than that: the fixture's 1e-3 dB holds on any CPU."""
    fe = LogMel()
    wave, ref = io["wave10"], io["out10.logmel"][:, 0].transpose(1, 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        runs = [fe(wave)[0]]
    finally:
        torch.set_num_threads(threads)
    runs += [fe(w)[0] for w in one_ulp_perturbations(wave)]
    for spec in runs:
        assert (spec - ref).abs().max() <= 1e-3
    assert (fe(wave * 1.001)[0] - ref).abs().max() > 1e-3  # a 0.1 % gain error is caught


def test_logmel_lengths_match_clips_alone(io):
    fe = LogMel()
    assert fe.hop_s == pytest.approx(0.01) and fe.num_frames(320000) == 1001
    w10, w4 = io["wave10"][:1], io["wave4"]
    batch = torch.cat([w10, torch.nn.functional.pad(w4, (0, w10.shape[1] - w4.shape[1]))])
    spec, frames = fe(batch, torch.tensor([w10.shape[1], w4.shape[1]]))
    assert frames.tolist() == [1001, 401]
    alone, _ = fe(w4)
    assert torch.equal(spec[1, :, :401], alone[0])
    assert torch.all(spec[1, :, 401:] == -100.0)  # silence floor 10*log10(1e-10)
    assert torch.equal(spec[0], fe(w10)[0][0])
    tiny, f = fe(torch.randn(1, 100))  # shorter than the reflect pad
    assert tiny.shape == (1, 64, 1) and f.tolist() == [1] and torch.isfinite(tiny).all()
    with pytest.raises(ValueError, match="lengths"):
        fe(batch, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        fe(w4[0])


def test_logmel_registered_and_config():
    cfg = LogMelConfig()
    assert cfg.to_dict()["kind"] == "logmel" and cfg.hop_s == pytest.approx(0.01)
    fe = build_frontend(cfg)
    assert isinstance(fe, LogMel)
    assert "mel_fb" not in fe.state_dict() and "window" not in fe.state_dict()
    with pytest.raises(ValueError, match="hop_length"):
        LogMelConfig(hop_length=0)


# ------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("wave,out,repeat", CASES)
def test_htsat_parity(io, converted, wave, out, repeat):
    m = _model(converted, repeat_short=repeat)
    with torch.no_grad():
        spec, _ = LogMel()(io[wave])
        if not repeat:
            bn = m._normalise(spec, None)
            ref_bn = io[f"{out}.logmel_bn"][:, 0].transpose(1, 2)
            assert (bn - ref_bn).abs().max() <= _tol(ref_bn)
            image, _, _ = m.spectrogram_to_image(spec)
            assert (image - io[f"{out}.image"]).abs().max() <= _tol(io[f"{out}.image"])
        o = m(spec)
    b = io[wave].shape[0]
    assert o.clip_logits.shape == (b, 10) and o.frame_logits.shape == (b, 32, 10)
    assert o.embedding.shape == (b, 192)
    clip = torch.sigmoid(o.clip_logits)
    frame = torch.sigmoid(o.frame_logits).repeat_interleave(32, dim=1)
    assert (clip - io[f"{out}.clipwise_output"]).abs().max() <= 1e-4
    assert (frame - io[f"{out}.framewise_output"]).abs().max() <= 1e-4
    assert (o.embedding - io[f"{out}.latent_output"]).abs().max() <= 1e-4
    # without frames, frames span the stretched (and, in infer mode, tiled) clip
    t = spec.shape[-1] * (1024 // spec.shape[-1] if repeat else 1)
    assert o.frame_hop_s == pytest.approx(t * 0.01 / 32)


# ------------------------------------------------------------------------------ converter
def test_converter_full_size_keys_and_params():
    d = json.loads((FIX / "htsat_tiny_527_keys.json").read_text())
    fake = {k["key"]: torch.empty(k["shape"]) for k in d["keys"]}
    args = htsat_model_args(fake)
    assert args == {
        "num_classes": 527, "num_mel_bins": 64, "spec_size": 256, "patch_size": 4,
        "embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (4, 8, 16, 32), "window_size": 8,
        "mlp_ratio": 4.0, "qkv_bias": True,
    }
    mapped = {k: tuple(v.shape) for k, v in htsat_state_dict(fake).items()}
    m = create_model("htsat_tiny")
    assert mapped == {k: tuple(v.shape) for k, v in m.state_dict().items()}
    # trainable parameters = the official count minus the frozen STFT/mel matrices and unused head
    dropped = sum(
        math.prod(k["shape"]) for k in d["keys"]
        if k["key"].removeprefix("sed_model.").startswith(
            ("spectrogram_extractor.", "logmel_extractor.", "head."))
    )
    n = sum(p.numel() for p in m.parameters())
    assert n == d["n_params"] - dropped == 29_963_431
    assert not any(k.endswith(("relative_position_index", "attn_mask")) for k in m.state_dict())


def _outputs_match(o, io, out: str) -> None:
    """Clip-wise, frame-wise (the reference's 1024 frames) and latent outputs within the fixture
    tolerance (README §3: 1e-4 absolute)."""
    clip = torch.sigmoid(o.clip_logits)
    frame = torch.sigmoid(o.frame_logits).repeat_interleave(32, dim=1)
    for got, key in ((clip, "clipwise_output"), (frame, "framewise_output"), (o.embedding, "latent_output")):
        ref = io[f"{out}.{key}"]
        assert got.shape == ref.shape, key
        assert (got - ref).abs().max() <= _tol(ref), key


def test_converted_checkpoint_reproduces_reference_by_default(io, tmp_path):
    """The real path: `audioflex convert htsat` with no option -> load_checkpoint -> the official
    model's outputs on the 10 s and 4 s inputs; the compat choice is in the checkpoint's config."""
    out = tmp_path / "htsat"
    res = CliRunner().invoke(app, ["convert", "htsat", str(FIX / "htsat.safetensors"), str(out)])
    assert res.exit_code == 0, res.output
    assert "stretch_short=True" in res.output
    meta = json.loads((out / "config.json").read_text())
    assert meta["model_args"]["stretch_short"] is True and meta["model_args"]["repeat_short"] is False
    ck = load_checkpoint(out)
    for wave, o in (("wave10", "out10"), ("wave4", "out4")):
        with torch.no_grad():
            spec, _ = ck.frontend(io[wave])
            _outputs_match(ck.model(spec), io, o)
    # padding stays available, recorded as such, and is what departs from the original
    pad = tmp_path / "htsat_pad"
    res = CliRunner().invoke(app, ["convert", "htsat", str(FIX / "htsat.safetensors"), str(pad),
                                   "-o", "stretch_short=false"])
    assert res.exit_code == 0, res.output
    ck_pad = load_checkpoint(pad)
    assert ck_pad.meta["model_args"]["stretch_short"] is False
    with torch.no_grad():
        spec, _ = ck_pad.frontend(io["wave10"])
        clip = torch.sigmoid(ck_pad.model(spec).clip_logits)
    assert (clip - io["out10.clipwise_output"]).abs().max() > 1e-3
    # a mistyped option is an error, not silently ignored
    res = CliRunner().invoke(app, ["convert", "htsat", str(FIX / "htsat.safetensors"), str(pad),
                                   "-o", "strech_short=false"])
    assert res.exit_code == 1 and "unknown option" in res.output


def test_stretch_with_frames_fits_each_clip_alone(io, converted):
    """A padded batch with ``frames`` (how the pipeline, detection and training call the model):
    each clip's valid frames are stretched alone, so clip outputs are the reference's; frame
    logits come back on the model's 0.32 s timeline."""
    m = _model(converted)
    fe = LogMel()
    batch = torch.cat([io["wave10"][:1], torch.nn.functional.pad(io["wave4"], (0, 192000)),
                       io["wave10"][1:]])
    with torch.no_grad():
        spec, frames = fe(batch, torch.tensor([320000, 128000, 320000]))
        spec = torch.nn.functional.pad(spec, (0, 1024 - spec.shape[-1]), value=-100.0)  # a 10.24 s window
        o = m(spec, frames)
        alone4 = m(fe(io["wave4"])[0])
        infer = _model(converted, repeat_short=True)(spec[1:2], frames[1:2])
    assert frames.tolist() == [1001, 401, 1001] and o.frame_hop_s == pytest.approx(0.32)
    for got, ref in ((o.clip_logits[[0, 2]], io["out10.clipwise_output"]),
                     (o.clip_logits[1:2], io["out4.clipwise_output"]),
                     (infer.clip_logits, io["out4_infer.clipwise_output"])):
        assert (torch.sigmoid(got) - ref).abs().max() <= 1e-4
    assert (o.embedding[1:2] - io["out4.latent_output"]).abs().max() <= 1e-4
    # 4 s clip: its 32 stretched steps (0.125 s each) resampled to 0.32 s steps; the first 13 cover it
    src = alone4.frame_logits[0]  # [32, C] over 4.01 s
    t = (torch.arange(13) + 0.5) * 0.32  # step centres (s)
    pos = (t / (4.01 / 32) - 0.5).clamp(0, 31)
    lo = pos.floor().long()
    w = (pos - lo)[:, None]
    expect = src[lo] * (1 - w) + src[(lo + 1).clamp(max=31)] * w
    assert (o.frame_logits[1, :13] - expect).abs().max() <= 1e-5
    # a full window needs no stretching: the same with and without frames
    full = torch.randn(2, 64, 1024) * 10 - 40
    with torch.no_grad():
        a, b = m(full), m(full, torch.tensor([1024, 1024]))
    assert torch.equal(a.clip_logits, b.clip_logits) and torch.equal(a.frame_logits, b.frame_logits)
    assert a.frame_hop_s == b.frame_hop_s == pytest.approx(0.32)


def _write_wav(path: Path, wave: torch.Tensor) -> Path:
    sf.write(str(path), wave.numpy(), 32000, subtype="FLOAT")
    return path


def test_pipeline_window_tensors_reproduce_reference(io, tmp_path):
    """What Pipeline feeds a converted HTS-AT for a 10 s file (one 10.23 s window: the wave
    zero-padded, its valid length known): with those frames the model gives the official output."""
    out = tmp_path / "htsat"
    c = convert_htsat(FIX / "htsat.safetensors")
    m = create_model(c.model_name, **c.model_args).eval()
    m.load_state_dict(c.state_dict)
    save_checkpoint(out, m, frontend=c.frontend)
    pipe = Pipeline.from_checkpoint(out)
    assert pipe.piece_s == pytest.approx(10.23)  # 1024 frames; a 10 s file is one window
    wave, lengths = pipe._padded([Piece(0.0, io["wave10"][0])], round(pipe.piece_s * 32000))
    with torch.no_grad():
        spec, frames = pipe.frontend(wave, lengths)
        clip = torch.sigmoid(pipe.model(spec, frames).clip_logits)
    assert spec.shape[-1] == 1024 and frames.tolist() == [1001]
    assert (clip - io["out10.clipwise_output"][:1]).abs().max() <= 1e-4


def test_pipeline_tag_10s_wav_reproduces_reference(io, tmp_path):
    out = tmp_path / "htsat"
    res = CliRunner().invoke(app, ["convert", "htsat", str(FIX / "htsat.safetensors"), str(out)])
    assert res.exit_code == 0, res.output
    wav = _write_wav(tmp_path / "w10.wav", io["wave10"][0])
    scores = Pipeline.from_checkpoint(out).clip_scores(wav)
    assert (scores - io["out10.clipwise_output"][0]).abs().max() <= 1e-4


def test_mel_matrix_check(ref_sd, tmp_path):
    assert check_mel_matrix(ref_sd, LogMelConfig()) < 1e-6
    other = dict(ref_sd)
    other["sed_model.logmel_extractor.melW"] = torch.from_numpy(
        slaney_mel_filters(16000, 1024, 64, 50.0, 8000.0)).float().T.contiguous()
    path = tmp_path / "scv2_like.safetensors"
    save_file({k: v.contiguous() for k, v in other.items()}, str(path))
    with pytest.raises(ConversionError, match=r"scv2_like.*another front end.*check_frontend=false"):
        convert_htsat(path)
    c = convert_htsat(path, check_frontend=False)
    assert c.model_args["num_classes"] == 10
    with pytest.raises(ConversionError, match="must be true or false"):
        convert_htsat(path, stretch_short="maybe")


def test_convert_htsat_result_and_errors(converted, ref_sd, tmp_path):
    assert converted.model_args["embed_dim"] == 24 and converted.model_args["num_classes"] == 10
    assert converted.frontend == LogMelConfig() and converted.labels is None
    assert not any(k.startswith(("head.", "sed_model.")) for k in converted.state_dict)
    labels = [f"c{i}" for i in range(10)]
    assert convert_htsat(FIX / "htsat.safetensors", labels=labels).labels == labels
    with pytest.raises(ConversionError, match="labels"):
        convert_htsat(FIX / "htsat.safetensors", labels=["a"])
    bad = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in ref_sd.items() if "tscam" not in k}, str(bad))
    with pytest.raises(ConversionError, match=r"bad\.safetensors.*tscam_conv"):
        convert_htsat(bad)


# ------------------------------------------------------------------------------ behaviour
def test_fold_unfold_round_trip_and_layout():
    spec = torch.randn(2, 64, 1024)
    img = fold_spectrogram(spec, 4)
    assert img.shape == (2, 1, 256, 256)
    chunk, mel, col = 2, 17, 100
    assert img[1, 0, chunk * 64 + mel, col] == spec[1, mel, 256 * chunk + col]
    assert torch.equal(unfold_image(img, 4), spec)


def test_default_padding_on_4s(io, converted):
    m = _model(converted, stretch_short=False)
    fe = LogMel()
    with torch.no_grad():
        spec, frames = fe(io["wave4"])
        o = m(spec)
    assert o.frame_logits.shape == (1, 32, 10) and o.frame_hop_s == pytest.approx(0.32)
    assert torch.isfinite(o.clip_logits).all() and torch.isfinite(o.frame_logits).all()
    steps = math.ceil(401 / 32)  # 13 steps of 0.32 s cover the 4 s of real audio
    assert torch.allclose(o.clip_logits, o.frame_logits[:, :steps].mean(1), atol=1e-6)
    # the same clip padded inside a longer batch gives the same outputs when frames are passed
    batch = torch.cat([io["wave10"][:1], torch.nn.functional.pad(io["wave4"], (0, 192000))])
    with torch.no_grad():
        bspec, bframes = fe(batch, torch.tensor([320000, 128000]))
        ob = m(bspec, bframes)
    assert (ob.clip_logits[1] - o.clip_logits[0]).abs().max() < 1e-5
    assert (ob.frame_logits[1] - o.frame_logits[0]).abs().max() < 1e-5
    assert (ob.embedding[1] - o.embedding[0]).abs().max() < 1e-5


def test_input_errors_and_hidden_states(converted):
    m = _model(converted)
    with pytest.raises(ValueError, match="sliding-window"):
        m(torch.randn(1, 64, 1025))
    with pytest.raises(ValueError, match=r"\[B, 64, T\]"):
        m(torch.randn(1, 128, 100))
    with torch.no_grad():
        o = m(torch.randn(1, 64, 300), return_layers=(7, 0, 3))
    assert [tuple(h.shape) for h in o.hidden_states] == [(1, 64, 192), (1, 4096, 24), (1, 1024, 48)]
    with pytest.raises(ValueError, match="out of range"):
        m(torch.randn(1, 64, 300), return_layers=(8,))


def _tiny(**kw) -> HTSAT:
    return HTSAT(num_classes=3, num_mel_bins=16, spec_size=64, patch_size=4, embed_dim=16,
                 depths=(2, 2), num_heads=(2, 4), window_size=4, **kw)


def test_tiny_config_float64_and_training():
    torch.manual_seed(0)
    m = _tiny(drop_path=0.1)
    assert m.contract.input_frames == 256 and m.num_steps == 32
    with torch.no_grad():
        o64 = m.double().eval()(torch.randn(2, 16, 200, dtype=torch.float64) * 10 - 40)
    assert o64.clip_logits.dtype == torch.float64 and o64.frame_logits.shape == (2, 32, 3)
    m = m.float().train()
    x = torch.randn(8, 16, 256) * 10 - 40
    y = (torch.rand(8, 3) > 0.5).float()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x).clip_logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in m.parameters())
    assert losses[-1] < 0.7 * losses[0]
