"""HEAR 2021 API: PaSST reference parity and the HEAR validator's checks on every family."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audioflex import hear
from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.audio.frontend.passt import PasstMelConfig
from audioflex.audio.stream import AudioReader
from audioflex.checkpoints.convert import get_converter
from audioflex.checkpoints.io import load_state_checked, save_checkpoint
from audioflex.models.registry import create_model
from fixture_paths import FIXTURES_DIR

FIX = FIXTURES_DIR

# tiny random-weight models, one per family (depth 2, dim 32)
TINY = {
    "ast": ("ast_tiny", dict(embed_dim=32, depth=2, num_heads=2, num_classes=5, num_mel_bins=32, max_length=128),
            KaldiFbankConfig(num_mel_bins=32, target_length=128)),
    "elastic_ast": ("elastic_ast_tiny", dict(embed_dim=32, depth=2, num_heads=2, num_classes=5, num_mel_bins=32,
                                             max_time_patches=8), KaldiFbankConfig(num_mel_bins=32)),
    "passt": ("passt_tiny", dict(embed_dim=32, depth=2, num_heads=2, num_classes=5, num_mel_bins=32,
                                 max_time_patches=20), PasstMelConfig(n_mels=32)),
    "htsat": ("htsat_mini", dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=5, num_mel_bins=32,
                                 spec_size=128, window_size=8, drop_path=0.0), LogMelConfig(n_mels=32)),
}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hear_ckpts")
    out = {}
    torch.manual_seed(0)
    for fam, (name, args, fe) in TINY.items():
        m = create_model(name, **args)
        for p in m.parameters():  # break the zero inits so outputs depend on the input
            p.data.add_(0.02 * torch.randn_like(p))
        out[fam] = save_checkpoint(root / fam, m, frontend=fe)
    return out


def _noise(seconds: float, n: int, sr: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, int(round(seconds * sr)), generator=g) * 2 - 1).float()


def validate(model: hear.EmbeddingModel) -> None:
    """The hearvalidator 2021.0.6 checks, as a function."""
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate in (16000, 22050, 32000, 44100, 48000)
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    sr = model.sample_rate
    for seconds, n in ((1.07, 2), (1.98, 2), (4.0, 2), (2.74, 4)):
        audio = _noise(seconds, n, sr, seed=n)
        emb, ts = hear.get_timestamp_embeddings(audio, model)
        assert emb.dtype == torch.float32 and ts.dtype == torch.float32
        assert emb.ndim == 3 and ts.ndim == 2
        assert emb.shape[0] == n and ts.shape == emb.shape[:2]
        assert emb.shape[2] == model.timestamp_embedding_size
        assert torch.isfinite(emb).all()
        diffs = ts[:, 1:] - ts[:, :-1]
        assert (diffs - diffs[0, 0]).abs().max() < 1.0, "hop must be regular within 1 ms"
        assert diffs[0, 0] <= 50.0 + 1e-3 or model.options.hop_ms > 50
        assert math.isclose(float(diffs[0, 0]), model.options.hop_ms, abs_tol=1e-3)
        assert ts.min() >= 0 and ts.max() <= seconds * 1000 + 1e-3
        assert ts.max() > seconds * 1000 - model.options.hop_ms - 1e-3  # covers the clip
        scene = hear.get_scene_embeddings(audio, model)
        assert scene.dtype == torch.float32 and scene.shape == (n, model.scene_embedding_size)
        assert torch.isfinite(scene).all()
        # different clips give different vectors (the model looks at the audio)
        assert not torch.allclose(scene[0], scene[1])


# --------------------------------------------------------------------------- PaSST reference


@pytest.fixture(scope="module")
def passt_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    c = get_converter("passt").convert(FIX / "passt.safetensors", num_heads=4)
    m = create_model(c.model_name, **c.model_args)
    load_state_checked(m, c.state_dict)
    return save_checkpoint(tmp_path_factory.mktemp("passt") / "ck", m, frontend=PasstMelConfig())


@pytest.mark.parametrize("name", ["hear_wave2", "hear_wave4"])
def test_passt_matches_reference_wrapper(passt_ckpt: Path, name: str) -> None:
    io = load_file(str(FIX / "passt_io.safetensors"))
    model = hear.load_model(str(passt_ckpt))
    assert (model.scene_embedding_size, model.timestamp_embedding_size) == (74, 74)
    x = io[name]
    emb, ts = hear.get_timestamp_embeddings(x, model)
    ref = io[f"timestamp_embeddings.{name}"]
    assert emb.shape == ref.shape
    assert (emb - ref).abs().max() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert torch.equal(ts, io[f"timestamps.{name}"])
    scene = hear.get_scene_embeddings(x, model)
    sref = io[f"scene.{name}"]
    assert (scene - sref).abs().max() <= 1e-4 * max(1.0, sref.abs().max().item())


def test_passt_long_scene_is_mean_of_windows(passt_ckpt: Path) -> None:
    # > scene window: the reference averages 10 s windows every 2.5 s (reflect-padded by 5 s)
    model = hear.load_model(str(passt_ckpt), scene_window_ms=1000)
    assert model.scene_window == 32000 and model.scene_hop == 8000
    x = _noise(1.5, 1, 32000)
    scene = hear.get_scene_embeddings(x, model)
    padded = torch.nn.functional.pad(x[None], (16000, 16000), mode="reflect")[0]
    wins = padded.unfold(1, 32000, 8000)[0]  # [7, 32000]
    assert wins.shape[0] == 48000 // 8000 + 1
    with torch.no_grad():
        ref = model.embed_waves(wins, scene=True).mean(0)
    assert torch.allclose(scene[0], ref, atol=1e-5)


def test_windows_equal_one_forward_per_window(passt_ckpt: Path) -> None:
    model = hear.load_model(str(passt_ckpt), hop_ms=30, window_ms=200, include_logits=False)
    x = _noise(0.7, 1, 32000, seed=3)
    emb, ts = hear.get_timestamp_embeddings(x, model)
    assert emb.shape[1] == int(0.7 * 1000 // 30) + 1 and ts[0, -1] <= 700
    padded = torch.nn.functional.pad(x[None], (3200, 3200), mode="reflect")[0, 0]
    for i in (0, 5, emb.shape[1] - 1):
        c = round(i * 30 * 32)
        with torch.no_grad():
            one = model.net(model.frontend(padded[None, c : c + 6400])[0]).embedding
        assert torch.allclose(emb[0, i], one[0], atol=1e-5)


# --------------------------------------------------------------------------- every family

OPTION_GRID = [
    {},
    {"hop_ms": 25, "window_ms": 250, "include_logits": True},
    {"layers": [0, -1], "layer_mode": "concat", "hop_ms": 100},
    {"layers": [0, 1], "layer_mode": "mean", "levels": [160, 480], "include_mel": True},
]


@pytest.mark.parametrize("family", list(TINY))
def test_validator_checks_every_family(ckpts: dict[str, Path], family: str) -> None:
    for opts in OPTION_GRID:
        if family == "htsat" and opts.get("layer_mode") == "mean":
            opts = {**opts, "layers": [0]}
        model = hear.load_model(str(ckpts[family]), json.dumps(opts))
        validate(model)


def test_sizes_follow_options(ckpts: dict[str, Path]) -> None:
    d, c = 32, 5
    base = hear.load_model(str(ckpts["passt"]))
    assert base.timestamp_embedding_size == base.scene_embedding_size == c + d  # PaSST default: logits + features
    two = hear.load_model(str(ckpts["passt"]), levels=[160, 800], include_mel=True)
    mel = 32 * 6  # 60 ms of PasstMel: 6 frames x 32 bins
    assert two.timestamp_embedding_size == 2 * (c + d) + mel
    assert two.scene_embedding_size == c + d
    lay = hear.load_model(str(ckpts["ast"]), layers=[0, 1], include_logits=True)
    assert lay.timestamp_embedding_size == c + 2 * d
    cls = hear.load_model(str(ckpts["passt"]), layers=[-1], layer_pool="cls", include_logits=False)
    assert cls.timestamp_embedding_size == d


def test_layer_pooling_definitions(ckpts: dict[str, Path]) -> None:
    x = _noise(1.0, 1, 16000)
    m_last = hear.load_model(str(ckpts["ast"]), layers=[1], layer_pool="tokens")
    scene = hear.get_scene_embeddings(x, m_last)
    spec, _ = m_last.frontend(x)
    with torch.no_grad():
        out = m_last.net(spec, return_layers=(1,))
    assert torch.allclose(scene[0], out.hidden_states[0][0, 2:].mean(0), atol=1e-5)
    # ElasticAST: per-window token means inside a packed batch equal each window alone
    m = hear.load_model(str(ckpts["elastic_ast"]), layers=[0])
    emb, _ = hear.get_timestamp_embeddings(x, m)
    one = m.embed_waves(m._gather(AudioReader(x[0], m.sample_rate), torch.tensor([8000]), m.level_samples[0]))
    assert torch.allclose(emb[0, 10], one[0], atol=1e-5)


def test_streamed_file_equals_in_memory(ckpts: dict[str, Path], tmp_path: Path) -> None:
    import soundfile as sf

    m = hear.load_model(str(ckpts["elastic_ast"]), stream_s=0.4, hop_ms=40)
    x = _noise(1.3, 1, 16000, seed=5) * 0.5
    sf.write(tmp_path / "a.wav", x[0].numpy(), 16000, subtype="FLOAT")
    emb, ts = hear.get_timestamp_embeddings(x, m)
    blocks = list(m.iter_timestamp_blocks(AudioReader(tmp_path / "a.wav", 16000)))
    assert len(blocks) > 1
    e2 = torch.cat([b[0] for b in blocks])
    assert torch.allclose(emb[0], e2, atol=1e-5)
    assert torch.equal(ts[0], torch.cat([b[1] for b in blocks]))


def test_bad_options_and_inputs(ckpts: dict[str, Path], tmp_path: Path) -> None:
    p = str(ckpts["passt"])
    with pytest.raises(ValueError, match="unknown embedding option"):
        hear.load_model(p, hopms=10)
    with pytest.raises(ValueError, match="hop_ms"):
        hear.load_model(p, hop_ms=5)
    with pytest.raises(ValueError, match="window"):
        hear.load_model(p, window_ms=100)  # PaSST needs 16 frames
    with pytest.raises(ValueError, match="layers"):
        hear.load_model(p, layers=[7])
    with pytest.raises(ValueError, match="JSON"):
        hear.load_model(p, "{hop_ms: 3")
    with pytest.raises(ValueError, match="cls"):
        hear.load_model(str(ckpts["elastic_ast"]), layers=[0], layer_pool="cls")
    with pytest.raises(ValueError, match="equal width"):
        hear.load_model(str(ckpts["htsat"]), layers=[0, 1], layer_mode="mean")
    with pytest.raises(ValueError, match="checkpoint directory"):
        hear.load_model("")
    m = hear.load_model(p)
    with pytest.raises(ValueError, match="n_sounds"):
        hear.get_scene_embeddings(torch.zeros(100), m)


# --------------------------------------------------------------------------- HTS-AT frame mode


def test_htsat_frame_mode_matches_direct_forward(ckpts: dict[str, Path]) -> None:
    """Frame mode: timestamp vectors are the un-folded final tokens of overlapping windows
    (5.12 s windows every 2.56 s for this tiny config; 80 ms steps), averaged where windows
    overlap and interpolated between step centres."""
    m = hear.load_model(str(ckpts["htsat"]), hop_ms=40)
    assert m.frames_mode and m.fw_samples == 512 * 320 and m.fw_hop == 256 * 320
    net, sr = m.net, m.sample_rate
    x = _noise(7.0, 1, sr, seed=7) * 0.5
    emb, ts = hear.get_timestamp_embeddings(x, m)
    assert emb.shape[1] == int(7000 // 40) + 1 and float(ts[0, -1]) <= 7000

    def steps_of(start: int) -> torch.Tensor:  # direct forward of one window -> [S, D]
        seg = x[:, start : start + m.fw_samples]
        spec, frames = m.frontend(seg, torch.tensor([seg.shape[1]]))
        spec, frames = spec[..., :512], frames.clamp(max=512)
        with torch.no_grad():
            image, _, _ = net.spectrogram_to_image(spec, frames)
            tokens, _ = net.forward_features(image)
            return net.tokens_to_time(tokens).mean(2)[0].T

    w0, w1 = steps_of(0), steps_of(256 * 320)
    # hop 40 ms = half an 80 ms step: timestamp 2s+1 sits on the centre of step s
    for s in (0, 10, 31):  # only window 0 covers steps < 32
        assert torch.allclose(emb[0, 2 * s + 1], w0[s], atol=1e-5)
    for s in (32, 50, 63):  # window 0 and window 1 overlap
        assert torch.allclose(emb[0, 2 * s + 1], (w0[s] + w1[s - 32]) / 2, atol=1e-5)
    # between two step centres: linear interpolation
    assert torch.allclose(emb[0, 2], (w0[0] + w0[1]) / 2, atol=1e-5)
    # blocks of a stream give the same vectors (windows are on a fixed grid)
    ms = hear.load_model(str(ckpts["htsat"]), hop_ms=40, stream_s=1.3)
    blocks = list(ms.iter_timestamp_blocks(AudioReader(x[0], ms.sample_rate)))
    assert len(blocks) > 3
    assert torch.allclose(torch.cat([b[0] for b in blocks]), emb[0], atol=1e-5)
    # the window mode is still available, and frame mode refuses other families / levels
    assert not hear.load_model(str(ckpts["htsat"]), timestamp_mode="window").frames_mode
    with pytest.raises(ValueError, match="HTS-AT"):
        hear.load_model(str(ckpts["ast"]), timestamp_mode="frames")
    with pytest.raises(ValueError, match="levels"):
        hear.load_model(str(ckpts["htsat"]), timestamp_mode="frames", levels=[160, 480])


def test_htsat_frame_mode_logits_and_layers(ckpts: dict[str, Path]) -> None:
    m = hear.load_model(str(ckpts["htsat"]), hop_ms=40, include_logits=True, layers=[0, 1])
    x = _noise(2.0, 1, m.sample_rate, seed=2) * 0.5
    emb, _ = hear.get_timestamp_embeddings(x, m)
    assert emb.shape[-1] == m.timestamp_embedding_size == 5 + 16 + 32
    spec, frames = m.frontend(x, torch.tensor([x.shape[1]]))
    with torch.no_grad():
        image, steps, _ = m.net.spectrogram_to_image(spec, frames)
        tokens, hidden = m.net.forward_features(image, (0, 1))
        logits = m.net.forward_head(tokens, steps).frame_logits[0]  # [64, 5]: 80 ms steps
        stage0 = m.net.time_steps(hidden[0])[0]  # block 0 (stage 0): 128 steps of 40 ms
    assert stage0.shape == (128, 16)
    assert torch.allclose(emb[0, 3, :5], logits[1], atol=1e-5)  # 120 ms: centre of step 1
    assert torch.allclose(emb[0, 3, 5:21], (stage0[2] + stage0[3]) / 2, atol=1e-5)  # between 100 and 140 ms
