"""Any-length detection: windows == alone, overlap-add, streaming == in memory, ElasticAST frame head,
events round trip, plots, strong-label training."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from audioflex.audio.frontend.kaldi import KaldiFbank, KaldiFbankConfig
from audioflex.audio.frontend.logmel import LogMel, LogMelConfig
from audioflex.evaluate.events import PostProcessing
from audioflex.inference import OverlapAdd, Pipeline, frame_scores, iter_window_scores, plan_windows
from audioflex.models.ast import AST, ElasticAST
from audioflex.models.contract import ModelContract
from audioflex.models.htsat import HTSAT
from audioflex.models.outputs import AudioOutput
from audioflex.packing import collate_packed
from audioflex.train.losses import frame_bce, packed_frame_mask, sed_loss, steps_valid_mask
from stubs import IdentityFrontend

SR = 32000


def tiny_htsat(**kw) -> HTSAT:
    """Window 256 frames (2.56 s), 32 steps of 8 frames (0.08 s)."""
    torch.manual_seed(0)
    return HTSAT(num_classes=3, num_mel_bins=16, spec_size=64, patch_size=4, embed_dim=16, depths=(2, 2),
                 num_heads=(2, 4), window_size=4, drop_path=0.0, **kw).eval()


def tiny_logmel() -> LogMel:
    return LogMel(LogMelConfig(n_mels=16)).eval()


def tiny_elastic(**kw) -> ElasticAST:
    torch.manual_seed(0)
    args = dict(num_classes=4, num_mel_bins=32, embed_dim=32, depth=2, num_heads=4, max_time_patches=8,
                frame_head=True)
    return ElasticAST(**{**args, **kw}).eval()


def tiny_kaldi() -> KaldiFbank:
    return KaldiFbank(KaldiFbankConfig(num_mel_bins=32)).eval()


def noise(seconds: float, sr: int = SR, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(round(seconds * sr), generator=g)


# ------------------------------------------------------------------------------- HTS-AT windows
def test_window_alone_equals_window_in_long_file():
    model, fe = tiny_htsat(), tiny_logmel()
    plan = plan_windows(model, fe)
    assert plan.window_samples == 256 * 320 and plan.step_samples == 8 * 320 and plan.hop_steps == 16
    wave = noise(9.3)
    got = list(iter_window_scores(model, fe, wave, plan=plan, batch_size=3))
    n = wave.numel()
    starts = [w.index * plan.hop_samples for w in got]
    assert starts == list(range(0, n, plan.hop_samples))[: len(got)]
    assert starts[-1] + plan.window_samples >= n > starts[-2] + plan.window_samples  # stops at the end
    for ws in (got[3], got[-1]):  # an aligned full window and the short last window
        start = ws.index * plan.hop_samples
        piece = wave[start : start + plan.window_samples]
        with torch.no_grad():
            spec, frames = fe(piece[None])
            spec, frames = spec[..., :256], frames.clamp(max=256)
            out = model(spec, frames)
        steps = math.ceil(int(frames) / 8)
        alone = torch.sigmoid(out.frame_logits[0, :steps])
        assert ws.frame_probs.shape == alone.shape and ws.start_step == ws.index * 16
        assert (ws.frame_probs - alone).abs().max() < 1e-5
        assert (ws.clip_probs - torch.sigmoid(out.clip_logits[0])).abs().max() < 1e-5
    # flat overlap-add = plain average of the windows covering each step
    fs = frame_scores(model, fe, wave, batch_size=3)
    assert fs.probs.shape == (math.ceil(n / plan.step_samples), 3) and fs.frame_hop_s == pytest.approx(0.08)
    t = 40
    cover = [w.frame_probs[t - w.start_step] for w in got if 0 <= t - w.start_step < w.frame_probs.shape[0]]
    assert len(cover) == 2
    assert torch.allclose(fs.probs[t], torch.stack(cover).mean(0), atol=1e-6)
    weights = torch.tensor([w.num_samples for w in got], dtype=torch.float32)
    clip_mean = (torch.stack([w.clip_probs for w in got]) * weights[:, None]).sum(0) / weights.sum()
    assert torch.allclose(fs.clip, clip_mean, atol=1e-6)
    fs_max = frame_scores(model, fe, wave, aggregate="max")
    assert torch.allclose(fs_max.clip, torch.stack([w.clip_probs for w in got]).amax(0), atol=1e-6)


def test_short_input_is_one_padded_window():
    model, fe = tiny_htsat(), tiny_logmel()
    fs = frame_scores(model, fe, noise(0.5))
    assert fs.probs.shape == (math.ceil(16000 / 2560), 3)
    assert fs.duration_s == pytest.approx(0.5)


# ------------------------------------------------------------------------------- overlap-add stub
class StubModel(nn.Module):
    """Windows of 40 frames, steps of 10. Class 0 logit = the step's position j in its window;
    class 1 logit = the window's first sample of that step (content)."""

    contract = ModelContract(family="stub", input_kind="grid", num_classes=2, num_mel_bins=1, input_frames=40,
                             native_frames=40, frame_step_frames=10, frame_steps=4)

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, spec, frames=None):
        b = spec.shape[0]
        j = torch.arange(4, dtype=spec.dtype).expand(b, 4)
        first = spec[:, 0, ::10]
        logits = torch.stack([j, first], dim=-1)
        return AudioOutput(clip_logits=torch.zeros(b, 2), embedding=torch.zeros(b, 1), frame_logits=logits)


def test_overlap_add_timeline_on_stub():
    wave = torch.linspace(-2, 2, 95)
    fs = frame_scores(StubModel(), IdentityFrontend(), wave, sample_rate=100, batch_size=2)
    # windows start at 0, 20, 40, 60 (the last is 35 samples -> 4 valid steps); 10 steps in all;
    # step 9 is half padding: masked, it holds step 8's value
    positions = [[0], [1], [2, 0], [3, 1], [2, 0], [3, 1], [2, 0], [3, 1], [2], [2]]
    expected = torch.tensor([np.mean([1 / (1 + math.exp(-j)) for j in js]) for js in positions])
    assert fs.probs.shape == (10, 2) and fs.frame_hop_s == pytest.approx(0.1)
    assert torch.allclose(fs.probs[:, 0], expected.float(), atol=1e-6)
    content = torch.sigmoid(wave[::10])
    content[9] = content[8]
    assert torch.allclose(fs.probs[:, 1], content, atol=1e-6)  # content agrees
    # weighted: steps seen by one window keep its value; others lie between the two windows' values
    fh = frame_scores(StubModel(), IdentityFrontend(), wave, sample_rate=100, weighting="hann")
    assert torch.allclose(fh.probs[[0, 1, 8, 9], 0], expected[[0, 1, 8, 9]].float(), atol=1e-6)
    assert not torch.allclose(fh.probs[:, 0], fs.probs[:, 0])
    # no overlap: every step seen once
    f1 = frame_scores(StubModel(), IdentityFrontend(), wave, sample_rate=100, hop=1.0)
    assert torch.allclose(f1.probs[:, 0], torch.sigmoid(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 0.0])), atol=1e-6)


def test_overlap_add_incremental_and_errors():
    ola = OverlapAdd()
    ola.add(0, torch.ones(4, 1), torch.ones(4))
    ola.add(2, 3 * torch.ones(4, 1), torch.ones(4))
    assert ola.result()[:, 0].tolist() == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="must not decrease"):
        ola.add(1, torch.ones(2, 1), torch.ones(2))
    with pytest.raises(ValueError, match="gap"):
        ola.add(10, torch.ones(2, 1), torch.ones(2))


def test_models_without_frame_head_are_refused():
    ast = AST(num_classes=2, embed_dim=16, depth=1, num_heads=2, max_length=64)
    with pytest.raises(ValueError, match="no frame-wise head"):
        plan_windows(ast, tiny_kaldi())
    with pytest.raises(ValueError, match="frame_head=True"):
        plan_windows(tiny_elastic(frame_head=False), tiny_kaldi())
    with pytest.raises(ValueError, match="hop"):
        plan_windows(tiny_htsat(), tiny_logmel(), hop=0.0)


# ------------------------------------------------------------------------------- streaming
def test_streaming_file_equals_in_memory(tmp_path):
    model, fe = tiny_htsat(), tiny_logmel()
    sr_file = 44100  # exercises the streaming resampler too
    wave = noise(180.0, sr_file, seed=3).numpy()
    wave[sr_file * 60 : sr_file * 61] += 0.5 * np.sin(np.arange(sr_file) * 2 * np.pi * 1000 / sr_file)
    path = tmp_path / "long.wav"
    sf.write(path, wave, sr_file, subtype="FLOAT")
    streamed = frame_scores(model, fe, path, hop=1.0, batch_size=16, block_s=7.3, keep_spectrogram=True)
    from audioflex.audio.io import load_audio

    whole = load_audio(path, SR)
    mem = frame_scores(model, fe, whole, hop=1.0, batch_size=16, block_s=1e6)
    assert streamed.probs.shape == mem.probs.shape == (math.ceil(whole.numel() / 2560), 3)
    assert (streamed.probs - mem.probs).abs().max() < 1e-6
    assert (streamed.clip - mem.clip).abs().max() < 1e-6
    assert streamed.duration_s == pytest.approx(180.0, abs=1e-3)
    assert streamed.spectrogram.shape[0] == 16 and streamed.spectrogram.shape[1] <= 8192
    assert streamed.spectrogram.shape[1] * streamed.spec_hop_s == pytest.approx(180.0, abs=0.1)


def test_bad_inputs_name_the_problem(tmp_path):
    model, fe = tiny_htsat(), tiny_logmel()
    from audioflex.audio.io import AudioError

    with pytest.raises(AudioError, match="missing.wav"):
        frame_scores(model, fe, tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="NaN"):
        frame_scores(model, fe, torch.full((1000,), float("nan")))
    with pytest.raises(AudioError, match="mono"):
        frame_scores(model, fe, torch.zeros(2, 1000))


# ------------------------------------------------------------------------------- ElasticAST frame head
def test_elastic_frame_head_shapes_padding_and_packed_equals_alone():
    model = tiny_elastic()
    g = torch.Generator().manual_seed(1)
    specs = [torch.randn(32, t, generator=g) for t in (40, 200, 17)]
    batch = collate_packed(specs, frame_shift_ms=[10.0] * 3)
    with torch.no_grad():
        out = model(batch)
    cols = [math.ceil(s.shape[1] / 16) for s in specs]
    assert out.frame_logits.shape == (3, max(cols), 4) and out.frame_hop_s == pytest.approx(0.16)
    mask = packed_frame_mask(batch)
    assert mask.sum(1).tolist() == cols
    assert (out.frame_logits[~mask] == ElasticAST.FRAME_PAD).all()
    assert torch.isfinite(out.frame_logits).all() and (out.frame_logits[mask].abs() < 100).all()
    for i, s in enumerate(specs):
        with torch.no_grad():
            alone = model(collate_packed([s]))
        assert alone.frame_hop_s is None  # no frame shift given: the caller knows it
        assert (alone.frame_logits[0] - out.frame_logits[i, : cols[i]]).abs().max() <= 1e-5
        assert (alone.clip_logits[0] - out.clip_logits[i]).abs().max() <= 1e-5
    # a padding segment (static token budget) changes nothing
    with torch.no_grad():
        padded = model(collate_packed(specs, pad_to=batch.num_tokens + 37))
    assert torch.allclose(padded.frame_logits, out.frame_logits, atol=1e-5)
    # the head is a mean over frequency rows -> LayerNorm -> Linear per column
    with torch.no_grad():
        tokens, info, _ = model.forward_features(batch)
        t0 = tokens[: batch.info.lengths[0]]
        col0 = t0[batch.coords[: t0.shape[0], 1] == 1].mean(0)
        ref = model.frame_fc(model.frame_norm(col0))
    assert torch.allclose(ref, out.frame_logits[0, 1], atol=1e-5)
    # without the head nothing changes in the output type's other fields
    plain = tiny_elastic(frame_head=False)
    assert plain(batch).frame_logits is None


def test_elastic_frame_head_trains_with_token_drop():
    model = tiny_elastic(token_drop=0.3).train()
    g = torch.Generator().manual_seed(2)
    specs = [torch.randn(32, t, generator=g) for t in (64, 150)]
    batch = collate_packed(specs)
    out = model(batch)
    targets = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    loss = sed_loss(out, targets)  # weak labels: mean-pooled frame logits + clip logits
    loss.backward()
    assert model.frame_fc.weight.grad is not None and model.frame_fc.weight.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0


def test_elastic_detect_any_length_and_pipeline():
    model, fe = tiny_elastic(), tiny_kaldi()
    wave = noise(4.0, 16000, seed=5)
    plan = plan_windows(model, fe)
    assert plan.window_samples == 128 * 160 and plan.step_samples == 16 * 160 and plan.hop_steps == 4
    fs = frame_scores(model, fe, wave)
    assert fs.frame_hop_s == pytest.approx(0.16) and fs.probs.shape[1] == 4
    assert fs.probs.shape[0] == math.ceil(wave.numel() / 2560)
    assert ((fs.probs >= 0) & (fs.probs <= 1)).all()
    # a window alone equals the same window inside the file (packed batch of windows)
    got = list(iter_window_scores(model, fe, wave, plan=plan, batch_size=4))
    ws = got[2]
    piece = wave[ws.index * plan.hop_samples :][: plan.window_samples]
    with torch.no_grad():
        spec, frames = fe(piece[None])
        alone = model(collate_packed([spec[0, :, : int(frames)]], pad_value=fe.config.pad_value))
    assert (torch.sigmoid(alone.frame_logits[0]) - ws.frame_probs).abs().max() < 1e-5
    pipe = Pipeline(model, fe, labels=["a", "b", "c", "d"])
    ps = pipe.frame_scores(wave, sample_rate=16000)
    assert torch.allclose(ps.probs, fs.probs, atol=1e-6) and ps.labels == ["a", "b", "c", "d"]


def test_elastic_frame_substeps_detect_on_a_finer_timeline():
    """frame_substeps=2: the timeline has one step per 8 frames (0.08 s), windows are whole columns,
    a window alone equals the same window in the file, and events land on 0.08 s steps."""
    model, fe = tiny_elastic(frame_substeps=2), tiny_kaldi()
    wave = noise(3.3, 16000, seed=6)
    plan = plan_windows(model, fe, hop=0.25)
    assert plan.step_samples == 8 * 160 and plan.window_samples == 128 * 160 and plan.hop_steps == 4
    assert plan_windows(model, fe, window_s=1.0).window_frames == 96  # 6.25 columns -> 6 whole columns
    fs = frame_scores(model, fe, wave, hop=0.25)
    assert fs.frame_hop_s == pytest.approx(0.08)
    with torch.no_grad():
        total_frames = int(fe(wave[None])[1])
    assert fs.probs.shape == (math.ceil(total_frames / 8), 4)
    ws = list(iter_window_scores(model, fe, wave, plan=plan, batch_size=3))[1]  # starts mid-way (0.64 s)
    piece = wave[ws.index * plan.hop_samples :][: plan.window_samples]
    with torch.no_grad():
        spec, frames = fe(piece[None])
        alone = model(collate_packed([spec[0, :, : int(frames)]], pad_value=fe.config.pad_value))
    assert alone.frame_logits.shape[1] == ws.frame_probs.shape[0] == 16
    assert (torch.sigmoid(alone.frame_logits[0]) - ws.frame_probs).abs().max() < 1e-5
    post = PostProcessing(thresholds=float(fs.probs.median()))
    events = Pipeline(model, fe, labels=["a", "b", "c", "d"]).detect(wave, post)
    assert events and all(abs(e.onset / 0.08 - round(e.onset / 0.08)) < 1e-6 for e in events)


# ------------------------------------------------------------------------------- losses
def test_frame_bce_mask_and_sed_loss_mixing():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    targets = (torch.rand(2, 5, 3) > 0.5).float()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    base = frame_bce(logits, targets, mask)
    changed = logits.clone()
    changed[0, 3:] = 50.0  # padding steps do not count
    assert torch.allclose(frame_bce(changed, targets, mask), base)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], targets[mask])
    assert torch.allclose(base, ref)
    assert steps_valid_mask(torch.tensor([17, 40]), 8, 5).sum(1).tolist() == [3, 5]
    clip_t = (torch.rand(2, 3) > 0.5).float()
    out = AudioOutput(clip_logits=logits.mean(1), embedding=torch.zeros(2, 1), frame_logits=logits)
    clip_bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.mean(1), clip_t)
    # HTS-AT: weak mean pooling of the frame logits *is* the clip logit
    assert torch.allclose(sed_loss(out, clip_t), clip_bce, atol=1e-6)
    mixed = sed_loss(out, clip_t, targets, frame_weight=0.25)
    assert torch.allclose(mixed, 0.75 * clip_bce + 0.25 * frame_bce(logits, targets), atol=1e-6)
    per_clip = frame_bce(logits, targets, mask, reduction="none")
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert torch.allclose(per_clip[0], bce(logits[0, :3], targets[0, :3]))
    assert torch.allclose(sed_loss(out, clip_t, targets, reduction="none").mean(), sed_loss(out, clip_t, targets))
    with pytest.raises(ValueError, match="frame_targets"):
        frame_bce(logits, targets[:, :4])
    with pytest.raises(ValueError, match="frame-wise head"):
        sed_loss(AudioOutput(clip_logits=logits.mean(1), embedding=torch.zeros(2, 1)), clip_t)


def beeps(seconds: float, events: list[tuple[float, float]], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * SR)) / SR
    x = 0.05 * torch.randn(t.numel(), generator=g)
    for on, off in events:
        m = (t >= on) & (t < off)
        x[m] += 0.5 * torch.sin(2 * math.pi * 2000 * t[m])
    return x


def test_tiny_htsat_learns_synthetic_events():
    model, fe = tiny_htsat(), tiny_logmel()
    model.train()
    hop = 0.08
    waves, targets = [], []
    for k in range(4):
        on = 0.3 + 0.4 * k
        ev = [(on, on + 0.6)]
        waves.append(beeps(2.55, ev, seed=k))
        tgt = torch.zeros(32, 3)
        for s in range(32):
            if s * hop < on + 0.6 and (s + 1) * hop > on:
                tgt[s, 0] = 1.0
        targets.append(tgt)
    wave, frame_t = torch.stack(waves), torch.stack(targets)
    with torch.no_grad():
        spec, frames = fe(wave)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    torch.manual_seed(0)
    for _ in range(12):
        out = model(spec, frames)
        mask = steps_valid_mask(frames, model.step_frames, model.num_steps)
        loss = sed_loss(out, None, frame_t, valid_mask=mask, frame_weight=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses


def test_plot_is_written(tmp_path):
    from audioflex.apps.plots import plot_detection

    model, fe = tiny_htsat(), tiny_logmel()
    fs = frame_scores(model, fe, noise(6.0), keep_spectrogram=True)
    fs.labels = ["beep", "dog", "car"]
    events = [SimpleNamespace(onset=1.0, offset=2.5, label="dog"), SimpleNamespace(onset=4.0, offset=4.4, label="dog")]
    png = plot_detection(tmp_path / "sub" / "t.png", fs, events, top_k=2, title="t.wav")
    data = png.read_bytes()
    assert png.stat().st_size > 5000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    from audioflex.apps.plots import top_classes

    assert top_classes(fs.probs.numpy(), fs.labels, events, 2)[0] == 1  # event classes first


# ------------------------------------------------------------------------------- files, events
def test_detect_files_tsv_json_round_trip_plots_and_bad_files(tmp_path):
    from audioflex.apps.detect import detect_files
    from audioflex.checkpoints import save_checkpoint
    from audioflex.evaluate.events import read_events_json, read_events_tsv

    model = tiny_htsat()
    args = dict(num_classes=3, num_mel_bins=16, spec_size=64, patch_size=4, embed_dim=16, depths=[2, 2],
                num_heads=[2, 4], window_size=4, drop_path=0.0)
    ckpt = save_checkpoint(tmp_path / "ckpt", model, frontend=LogMelConfig(n_mels=16), labels=["beep", "dog", "car"],
                           model_name="htsat_mini", model_args=args)
    a, b = tmp_path / "a.wav", tmp_path / "b.flac"
    sf.write(a, beeps(5.0, [(1.0, 2.0)], 0).numpy(), SR)
    sf.write(b, beeps(3.7, [(0.5, 1.0)], 1)[::2].numpy(), SR // 2)  # 16 kHz, resampled
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    thr = {"beep": 1e-6, "dog": 1.0, "car": 0.6}  # beep: always on, dog: never (the range is (0, 1])
    rep = detect_files([a, bad, b], ckpt, post=PostProcessing(thresholds=thr, median_filter_s=0.2, min_duration_s=0.1),
                       out=tmp_path / "out" / "ev.tsv", plot_dir=tmp_path / "plots")
    assert list(rep.errors) == [str(bad)] and "bad.wav" in rep.errors[str(bad)]
    assert set(rep.events) == {str(a), str(b)}
    beep_a = [e for e in rep.events[str(a)] if e.label == "beep"]
    assert len(beep_a) == 1 and beep_a[0].onset == 0.0 and beep_a[0].offset == pytest.approx(5.0)
    assert not any(e.label == "dog" for evs in rep.events.values() for e in evs)
    back = read_events_tsv(rep.out)
    assert rep.out.read_text().splitlines()[0] == "filename\tonset\toffset\tevent_label"
    for name, evs in rep.events.items():
        got = back[name]
        assert [(round(e.onset, 3), round(e.offset, 3), e.label) for e in evs] == [
            (e.onset, e.offset, e.label) for e in got]
    for f in (a, b):
        png = rep.plots[str(f)]
        assert png.is_file() and png.stat().st_size > 5000
    rj = detect_files([a, bad], ckpt, post=PostProcessing(thresholds=thr), out=tmp_path / "ev.json", fmt="json")
    as_tuples = [(e.onset, e.offset, e.label) for e in rj.events[str(a)]]
    assert [(e.onset, e.offset, e.label) for e in read_events_json(rj.out)[str(a)]] == as_tuples
    assert json.loads(rj.out.read_text())["errors"] == {str(bad): rj.errors[str(bad)]}
    with pytest.raises(ValueError, match="unknown label"):
        detect_files([a], ckpt, post=PostProcessing(thresholds={"cat": 0.3}))
    # the Pipeline gives the same events
    pipe = Pipeline.from_checkpoint(ckpt)
    evs = pipe.detect(a, PostProcessing(thresholds=thr, median_filter_s=0.2, min_duration_s=0.1))
    assert [(e.onset, e.offset, e.label) for e in evs] == [(e.onset, e.offset, e.label) for e in rep.events[str(a)]]


# ------------------------------------------------------------------------------- bad input (CLI)
@pytest.fixture
def frame_ckpt(tmp_path):
    from audioflex.checkpoints import save_checkpoint
    from audioflex.models.registry import create_model

    torch.manual_seed(0)
    m = create_model("elastic_ast_tiny", num_classes=2, num_mel_bins=32, embed_dim=32, depth=1, num_heads=2,
                     max_time_patches=8, frame_head=True)
    return save_checkpoint(tmp_path / "ck", m, frontend=KaldiFbankConfig(num_mel_bins=32), labels=["siren", "knock"])


def _detect(*args):
    from typer.testing import CliRunner

    from audioflex.cli import app

    return CliRunner().invoke(app, ["detect", *map(str, args)])


def test_detect_rejects_thresholds_outside_0_1_and_names_the_option(frame_ckpt, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, noise(1.0, 16000).numpy(), 16000)
    for thr, needle in (("1.5", "outside (0, 1]"), ("-0.5", "outside (0, 1]"), ("0", "outside (0, 1]"),
                        ("abc", "'abc' is not a number"), ("siren=2", "outside (0, 1]"),
                        ("siren=0.4,knock", "'knock' is not a label=value pair"), ("siren=x", "not a number")):
        r = _detect(wav, "-c", frame_ckpt, "--threshold", thr)
        assert r.exit_code == 1, (thr, r.output)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "--threshold" in lines[0] and needle in lines[0], (thr, r.stderr)
        assert "Traceback" not in r.output + r.stderr
    r = _detect(wav, "-c", frame_ckpt, "--threshold", "siren=0.4,knock=1")
    assert r.exit_code == 0, r.output
    # the library refuses them too, with the range in the message
    pipe = Pipeline.from_checkpoint(frame_ckpt)
    for thr in (1.5, -0.5, 0.0, {"siren": 1.01}, [0.5, -1.0]):
        with pytest.raises(ValueError, match=r"thresholds must be in \(0, 1\]"):
            pipe.detect(wav, PostProcessing(thresholds=thr))
    assert isinstance(pipe.detect(wav, PostProcessing(thresholds=1.0)), list)


def test_detect_rejects_negative_post_processing_and_names_the_cli_option(frame_ckpt, tmp_path):
    """The error names the millisecond option the user typed, not the library's seconds field."""
    wav = tmp_path / "a.wav"
    sf.write(wav, noise(1.0, 16000).numpy(), 16000)
    for option in ("--median-ms", "--min-duration-ms", "--merge-gap-ms"):
        for value in ("-5", "nan"):
            r = _detect(wav, "-c", frame_ckpt, option, value)
            assert r.exit_code == 1, (option, value, r.output)
            lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
            assert len(lines) == 1 and lines[0].startswith(f"error: {option}:"), (option, r.stderr)
            assert "_s" not in lines[0] and "Traceback" not in r.output + r.stderr
    assert _detect(wav, "-c", frame_ckpt, "--min-duration-ms", "0", "--merge-gap-ms", "20").exit_code == 0


def test_detect_prints_each_error_once(frame_ckpt, tmp_path, caplog):
    """The CLI prints the error line; the library does not log it at WARNING or above too (the
    CLI's logging shows those on stderr, which printed every error twice)."""
    wav = tmp_path / "a.wav"
    sf.write(wav, noise(1.0, 16000).numpy(), 16000)
    missing = tmp_path / "missing.wav"
    with caplog.at_level("WARNING"):
        r = _detect(wav, missing, "-c", frame_ckpt, "--format", "json")
    assert r.exit_code == 1
    assert sum("missing.wav" in ln for ln in r.stderr.splitlines()) == 1, r.stderr
    assert not [rec for rec in caplog.records if "missing.wav" in rec.getMessage()]
    data = json.loads(r.stdout)  # the good file is still processed
    assert list(data["files"]) == [str(wav)] and list(data["errors"]) == [str(missing)]
