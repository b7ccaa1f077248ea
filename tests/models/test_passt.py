"""PaSST: front end, model and converter against the hear21passt fixtures (fixtures README §4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import audioflex.models.passt  # noqa: F401  (registers the variants)
from audioflex.audio.frontend.base import build_frontend
from audioflex.audio.frontend.kaldi import mel_bank_rounding
from audioflex.audio.frontend.passt import (
    PasstMel,
    PasstMelConfig,
    passt_mel_jitter,
    passt_mel_matrix,
)
from audioflex.checkpoints.convert.base import ConversionError, get_converter
from audioflex.checkpoints.convert.passt import convert_passt, passt_model_args, passt_state_dict
from audioflex.cli import app
from audioflex.inference import Pipeline
from audioflex.models.passt import PaSST
from audioflex.models.registry import create_model, default_frontend, list_models
from conditioning import check_within_bound, logmel_bound, one_ulp_perturbations, well_conditioned_share
from fixture_paths import FIXTURES_DIR

FIX = FIXTURES_DIR
WEIGHTS = FIX / "passt.safetensors"


def _tol(ref: torch.Tensor) -> float:
    return 1e-4 * max(1.0, ref.abs().max().item())


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(str(FIX / "passt_io.safetensors"))


@pytest.fixture(scope="module")
def frontend() -> PasstMel:
    return PasstMel().eval()


@pytest.fixture(scope="module")
def model() -> PaSST:
    c = convert_passt(WEIGHTS, num_heads=4)
    m = create_model(c.model_name, **c.model_args).eval()
    m.load_state_dict(c.state_dict, strict=True)
    return m


# ---------------------------------------------------------------- front end


@pytest.mark.parametrize("name", ["wave10", "wave3"])
def test_frontend_matches_reference(frontend: PasstMel, io: dict, name: str) -> None:
    with torch.no_grad():
        mel, frames = frontend(io[name])
    ref = io[f"mel.{name}"]
    assert mel.shape == ref.shape
    assert frames.tolist() == [ref.shape[-1]] * ref.shape[0]
    data_only = _mel_bounds(frontend, io[name], reference_weights=False)
    for i, bound in enumerate(_mel_bounds(frontend, io[name])):
        # each entry within what re-rounding moves it (tests/conditioning.py) ...
        check_within_bound(mel[i], ref[i], bound, name=f"{name}[{i}]")
        # ... and the data's conditioning is the fixture's 1e-4 on most entries (the second 10 s clip
        # has quiet bands); the reference's float32 mel weights add their own rounding on top
        assert well_conditioned_share(data_only[i], 1e-4) >= 0.35


def _mel_bounds(frontend: PasstMel, wave: torch.Tensor, *, reference_weights: bool = True) -> list[torch.Tensor]:
    """Conditioning bound ``[F, T]`` of each clip's PaSST log-mel ``(log(E + 1e-5) + 4.5) / 5``."""
    c = frontend.config
    power, _ = frontend.power(wave.double())
    werr = mel_bank_rounding(c.n_mels, c.n_fft, c.sample_rate, c.fmin, c.fmax)  # the reference's float32 weights
    return [
        logmel_bound(
            p, frontend.mel_matrix, n_fft=c.n_fft, scale=1 / c.norm_scale, offset=c.log_offset,
            weight_error=werr if reference_weights else None,
        )
        for p in power
    ]


def test_frontend_parity_survives_other_rounding(frontend: PasstMel, io: dict) -> None:
    """One-ulp input changes (what another CPU's rounding does) move entries beyond a fixed 1e-4
    but stay within the conditioning bound; so does a single thread."""
    wave, ref = io["wave10"], io["mel.wave10"]
    bounds = _mel_bounds(frontend, wave)
    moved = 0.0
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        runs = [frontend(wave)[0]]
    finally:
        torch.set_num_threads(threads)
    runs += [frontend(w)[0] for w in one_ulp_perturbations(wave)]
    for mel in runs:
        for i, bound in enumerate(bounds):
            check_within_bound(mel[i], ref[i], bound, name="wave10 re-rounded")
        moved = max(moved, (mel - ref).abs().max().item())
    assert moved > 1e-4
    with pytest.raises(AssertionError, match="conditioning bound"):  # a 0.1 % gain error is caught
        check_within_bound(frontend(wave * 1.001)[0][0], ref[0], bounds[0])


def test_frontend_padded_batch_equals_single(frontend: PasstMel, io: dict) -> None:
    wave = torch.zeros(2, 320000)
    wave[0] = io["wave10"][0]
    wave[1, :96000] = io["wave3"][0]
    with torch.no_grad():
        mel, frames = frontend(wave, torch.tensor([320000, 96000]))
    assert frames.tolist() == [1000, 300]
    check_within_bound(mel[0], io["mel.wave10"][0], _mel_bounds(frontend, io["wave10"][:1])[0])
    check_within_bound(mel[1, :, :300], io["mel.wave3"][0], _mel_bounds(frontend, io["wave3"])[0])
    silence = (torch.tensor(1e-5).log() + 4.5) / 5
    assert torch.allclose(mel[1, :, 300:], silence.expand(128, 700))


def test_frontend_config_roundtrip_and_errors(frontend: PasstMel) -> None:
    cfg = PasstMelConfig()
    fe = build_frontend(cfg.to_dict())
    assert isinstance(fe, PasstMel) and fe.config == cfg
    assert cfg.hop_s == pytest.approx(0.01) and fe.sample_rate == 32000
    assert frontend.num_frames(320000) == 1000 and frontend.num_frames(96000) == 300
    assert frontend.num_frames(5120) == 16
    assert "mel_matrix" not in frontend.state_dict()
    m = passt_mel_matrix(cfg)
    assert m.shape == (128, 513) and (m[:, -1] == 0).all() and m.max() <= 1.0
    with pytest.raises(ValueError, match="at least 514 samples"):
        frontend(torch.zeros(1, 300))
    with pytest.raises(ValueError, match="exceeds"):
        frontend(torch.zeros(1, 1000), torch.tensor([2000]))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        frontend(torch.zeros(1000))
    with pytest.raises(ValueError, match="fmax"):
        PasstMelConfig(fmax=20000.0)


def test_mel_jitter_is_explicit_and_reproducible(frontend: PasstMel, io: dict) -> None:
    x = io["wave3"]
    a, fa = passt_mel_jitter(frontend, x, generator=torch.Generator().manual_seed(0))
    b, _ = passt_mel_jitter(frontend, x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and fa.tolist() == [300]
    # Same draws as the reference: fmin + randint(10), fmax + 1000 - randint(2000).
    g = torch.Generator().manual_seed(0)
    fmin = int(torch.randint(10, (1,), generator=g))
    fmax = 15000 + 1000 - int(torch.randint(2000, (1,), generator=g))
    power, frames = frontend.power(x)
    expected = frontend.mel(power, frames, passt_mel_matrix(frontend.config, fmin, fmax))
    assert torch.equal(a, expected)
    assert (a - io["mel.wave3"]).abs().max() > 1e-3  # the jitter changes the mel
    # The module itself stays deterministic in train mode.
    frontend.train()
    try:
        assert (frontend(x)[0] - io["mel.wave3"]).abs().max().item() <= 1e-4
    finally:
        frontend.eval()


# ---------------------------------------------------------------- model


@pytest.mark.parametrize("name", ["wave10", "wave3"])
def test_model_matches_reference(model: PaSST, io: dict, name: str) -> None:
    with torch.no_grad():
        out = model(io[f"mel.{name}"])
    for key, got in (("logits", out.clip_logits), ("features", out.embedding)):
        ref = io[f"{key}.{name}"]
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() <= _tol(ref), key


def test_wave_to_logits(model: PaSST, frontend: PasstMel, io: dict) -> None:
    with torch.no_grad():
        out = model(frontend(io["wave3"])[0])
    ref = io["logits.wave3"]
    assert (out.clip_logits - ref).abs().max().item() <= _tol(ref)


def test_batch_equals_single(model: PaSST, io: dict) -> None:
    mel = io["mel.wave10"]
    with torch.no_grad():
        both = model(mel).clip_logits
        one = torch.cat([model(mel[i : i + 1]).clip_logits for i in range(2)])
    assert (both - one).abs().max().item() <= 1e-5


def test_longer_than_table(model: PaSST, io: dict) -> None:
    mel = torch.cat([io["mel.wave10"][:1], io["mel.wave10"][:1, :, :500]], dim=-1)  # 15 s
    with torch.no_grad():
        out = model(mel, return_layers=(-1,))
    assert out.clip_logits.shape == (1, 10) and torch.isfinite(out.clip_logits).all()
    assert out.hidden_states[0].shape == (1, 2 + 12 * 149, 64)
    pos = model.time_positions(149)
    table = model.time_new_pos_embed
    assert pos.shape == (1, 64, 1, 149)
    assert torch.allclose(pos[..., 0], table[..., 0]) and torch.allclose(pos[..., -1], table[..., -1])
    # Shorter inputs use the first columns of the table (eval).
    assert torch.equal(model.time_positions(29), table[..., :29])


def test_patchout_only_in_training(io: dict) -> None:
    c = convert_passt(WEIGHTS, num_heads=4)
    plain = PaSST(**c.model_args).eval()
    plain.load_state_dict(c.state_dict)
    po = PaSST(**c.model_args, s_patchout_t=3, s_patchout_f=2, u_patchout=5).eval()
    po.load_state_dict(c.state_dict)
    mel = io["mel.wave3"]  # grid 12 x 29
    with torch.no_grad():
        ref = plain(mel).clip_logits
        e1, e2 = po(mel).clip_logits, po(mel).clip_logits
        assert torch.equal(e1, e2) and torch.equal(e1, ref)
        po.train()
        torch.manual_seed(0)
        out = po(mel, return_layers=(0, 1))
        assert [h.shape[1] for h in out.hidden_states] == [2 + (12 - 2) * (29 - 3) - 5] * 2
        assert (out.clip_logits - ref).abs().max() > 1e-4
        # Without patchout or random time offset, training mode equals eval (no dropout here).
        plain.train()
        plain.random_time_offset = False
        assert torch.allclose(plain(mel).clip_logits, ref, atol=1e-6)
        plain.random_time_offset = True
        shifted = plain(mel, return_layers=(0,))
        assert shifted.hidden_states[0].shape[1] == 2 + 12 * 29


def test_return_layers_and_input_errors(model: PaSST, io: dict) -> None:
    mel = io["mel.wave3"]
    with torch.no_grad():
        out = model(mel, return_layers=(1, 0, -1))
        feats, hidden = model.forward_features(mel, (1,))
        logits = model.forward_head(feats).clip_logits
    assert len(out.hidden_states) == 3
    assert torch.equal(out.hidden_states[0], out.hidden_states[2])
    assert not torch.equal(out.hidden_states[0], out.hidden_states[1])
    assert torch.equal(hidden[0], out.hidden_states[0]) and torch.equal(logits, out.clip_logits)
    with pytest.raises(ValueError, match="out of range"):
        model(mel, return_layers=(5,))
    with pytest.raises(ValueError, match="mel bins"):
        model(mel[:, :64])
    with pytest.raises(ValueError, match="at least 16 frames"):
        model(mel[..., :10])


def test_registry_variants() -> None:
    names = set(list_models())
    assert {"passt_tiny", "passt_small", "passt_base"} <= names
    assert isinstance(default_frontend("passt_base"), PasstMelConfig)
    m = create_model("passt_tiny", depth=1, num_classes=3).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 128, 40))
    assert out.clip_logits.shape == (2, 3) and out.embedding.shape == (2, 192)


# ---------------------------------------------------------------- converter


def test_base_keys_match_official() -> None:
    spec = json.loads((FIX / "passt_full_keys.json").read_text())["keys"]
    official = {e["key"]: torch.empty(e["shape"], device="meta") for e in spec}
    sd = passt_state_dict(official)
    assert "head_dist.weight" in official and not any(k.startswith("head_dist") for k in sd)
    assert set(official) - set(sd) == {"head_dist.weight", "head_dist.bias"}
    args = passt_model_args(sd)
    assert (args["embed_dim"], args["depth"], args["num_heads"], args["num_classes"]) == (
        768, 12, 12, 527)
    assert (args["stride"], args["max_time_patches"], args["distilled"]) == (10, 99, True)
    with torch.device("meta"):
        m = create_model("passt_base")
    ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in sd.items()}


def test_converter_wrappers_and_errors(tmp_path: Path) -> None:
    assert get_converter("passt").convert is convert_passt
    sd = load_file(str(WEIGHTS))
    wrapped = {f"net.{k}": v for k, v in sd.items()}
    wrapped["mel.window"] = torch.ones(800)
    p = tmp_path / "wrapped.safetensors"
    save_file(wrapped, str(p))
    c = convert_passt(p, num_heads=4)
    assert set(c.state_dict) == set(sd) - {"head_dist.weight", "head_dist.bias"}
    assert c.model_args["num_classes"] == 10 and c.frontend == PasstMelConfig()
    assert any("head_dist" in n for n in c.notes)
    with pytest.raises(ConversionError, match="unknown option"):
        convert_passt(WEIGHTS, heads=4)
    with pytest.raises(ConversionError, match="does not divide"):
        convert_passt(WEIGHTS, num_heads=5)
    with pytest.raises(ConversionError, match="frequency patches"):
        convert_passt(WEIGHTS, num_heads=4, stride=16)
    bad = dict(sd, extra_thing=torch.zeros(1))
    with pytest.raises(ConversionError, match="unexpected keys"):
        passt_state_dict(bad)
    with pytest.raises(ConversionError, match="missing"):
        passt_state_dict({"foo": torch.zeros(1)})


def _converted_checkpoint(tmp_path: Path) -> Path:
    out = tmp_path / "passt"
    res = CliRunner().invoke(app, ["convert", "passt", str(WEIGHTS), str(out), "-o", "num_heads=4"])
    assert res.exit_code == 0, res.output
    return out


def test_pipeline_one_window_of_10s_reproduces_reference(io: dict, tmp_path: Path) -> None:
    """A 10 s file fed as one window (1000 frames -> 99 columns, as hear21passt does) through the
    converted checkpoint gives the reference logits; the window must reach 1005 frames (the
    longest input with 99 columns), i.e. piece_s=10.04."""
    wav = tmp_path / "w10.wav"
    sf.write(str(wav), io["wave10"][0].numpy(), 32000, subtype="FLOAT")
    pipe = Pipeline.from_checkpoint(_converted_checkpoint(tmp_path), piece_s=10.04)
    scores = pipe.clip_scores(wav)
    assert (scores - torch.sigmoid(io["logits.wave10"][0])).abs().max() <= 1e-4


def test_pipeline_default_window_of_10s_reproduces_reference(io: dict, tmp_path: Path) -> None:
    wav = tmp_path / "w10.wav"
    sf.write(str(wav), io["wave10"][0].numpy(), 32000, subtype="FLOAT")
    scores = Pipeline.from_checkpoint(_converted_checkpoint(tmp_path)).clip_scores(wav)
    assert (scores - torch.sigmoid(io["logits.wave10"][0])).abs().max() <= 1e-4
