"""ONNX export of every family: ORT reproduces torch (<= 1e-4 fp32) on inputs other than the
tracing example (batch sizes, lengths, packed layouts), and the metadata travels with the graph."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from audioflex import __version__  # noqa: E402
from audioflex.audio.frontend.kaldi import KaldiFbankConfig  # noqa: E402
from audioflex.audio.frontend.logmel import LogMelConfig  # noqa: E402
from audioflex.audio.frontend.passt import PasstMelConfig  # noqa: E402
from audioflex.export import export_onnx, load_onnx  # noqa: E402
from audioflex.models import create_model  # noqa: E402
from audioflex.packing import collate_packed  # noqa: E402

TOL = 1e-4
LABELS = [f"c{i}" for i in range(5)]
TINY = {
    "ast": ("ast_tiny", {"max_length": 128, "depth": 2}, KaldiFbankConfig(target_length=128)),
    "elastic_ast": ("elastic_ast_tiny", {"depth": 2, "max_time_patches": 4, "frame_head": True}, KaldiFbankConfig()),
    "htsat": (
        "htsat_mini",
        {"depths": (1, 1, 1, 1), "spec_size": 128, "window_size": 4, "drop_path": 0.0},
        LogMelConfig(),
    ),
    "passt": ("passt_tiny", {"depth": 2, "max_time_patches": 12}, PasstMelConfig()),
}


def tiny_model(family: str) -> torch.nn.Module:
    name, kw, _ = TINY[family]
    torch.manual_seed(0)
    return create_model(name, num_classes=len(LABELS), **kw).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """family -> (torch model, ONNX bundle), exported once per module."""
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for family, (name, _, fe) in TINY.items():
        model = tiny_model(family)
        path = export_onnx(model, root / f"{family}.onnx", frontend=fe, labels=LABELS, model_name=name)
        out[family] = (model, load_onnx(path))
    return out


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    err = float((a - b).abs().max())
    assert err <= TOL, f"{what}: ONNX differs from torch by {err:.3g}"


@pytest.mark.parametrize("family", ["ast", "htsat", "passt"])
def test_grid_parity_batch_sizes(exported, family):
    model, bundle = exported[family]
    c = model.contract
    gen = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        spec = torch.randn(batch, c.num_mel_bins, c.input_frames, generator=gen)
        frames = torch.full((batch,), c.input_frames)
        frames[0] = c.input_frames // 3  # a padded last window
        with torch.no_grad():
            want = model(spec, frames)
        got = bundle.model(spec, frames)
        _close(got.clip_logits, want.clip_logits, f"{family} clip_logits B={batch}")
        _close(got.embedding, want.embedding, f"{family} embedding B={batch}")
        if want.frame_logits is not None:
            _close(got.frame_logits, want.frame_logits, f"{family} frame_logits B={batch}")
            assert got.frame_hop_s == pytest.approx(want.frame_hop_s)


@pytest.mark.parametrize("family", ["htsat", "passt"])
def test_grid_dynamic_time(exported, family):
    """HTS-AT and PaSST graphs take shorter inputs than their window (time axis dynamic)."""
    model, bundle = exported[family]
    assert bundle.model.time_axis == "dynamic"
    c = model.contract
    spec = torch.randn(2, c.num_mel_bins, c.input_frames // 2 + 7)
    with torch.no_grad():
        want = model(spec)
    _close(bundle.model(spec).clip_logits, want.clip_logits, f"{family} short input")


def test_ast_fixed_window_refuses_other_lengths(exported):
    model, bundle = exported["ast"]
    assert bundle.model.time_axis == "fixed" and bundle.model.time_frames == model.contract.input_frames
    with pytest.raises(ValueError, match="exactly 128 frames"):
        bundle.model(torch.randn(1, 128, 64))


def test_htsat_step_features(exported):
    model, bundle = exported["htsat"]
    c = model.contract
    spec = torch.randn(2, c.num_mel_bins, c.input_frames)
    frames = torch.tensor([c.input_frames, 100])
    with torch.no_grad():
        want = model.forward_steps(spec, frames)
    got = bundle.model.forward_steps(spec, frames)
    _close(got[0], want[0], "htsat step logits")
    _close(got[1], want[1], "htsat step features")


@pytest.mark.parametrize(
    "lengths",
    [(40,), (100, 7, 64), (16, 16, 16, 16, 30)],  # 100 frames = 7 columns > the 4-column table (resampled)
)
def test_elastic_packed_layouts(exported, lengths):
    """Token count, clip count and segment layout are graph inputs: any packing gives torch's numbers."""
    model, bundle = exported["elastic_ast"]
    gen = torch.Generator().manual_seed(2)
    batch = collate_packed([torch.randn(128, t, generator=gen) for t in lengths], frame_shift_ms=[10.0] * len(lengths))
    with torch.no_grad():
        want = model(batch)
    got = bundle.model(batch)
    _close(got.clip_logits, want.clip_logits, f"elastic clip_logits {lengths}")
    _close(got.embedding, want.embedding, f"elastic embedding {lengths}")
    _close(got.frame_logits, want.frame_logits, f"elastic frame_logits {lengths}")
    assert got.frame_hop_s == pytest.approx(want.frame_hop_s)


def test_elastic_rows_frame_head_exports(tmp_path):
    """frame_pool='rows' (per-row frame weights) goes through ONNX like the column mean."""
    torch.manual_seed(0)
    kw = {"depth": 2, "max_time_patches": 4, "frame_head": True, "frame_pool": "rows"}
    model = create_model("elastic_ast_tiny", num_classes=len(LABELS), **kw).eval()
    bundle = load_onnx(export_onnx(model, tmp_path / "rows.onnx", frontend=KaldiFbankConfig(), labels=LABELS,
                                   model_name="elastic_ast_tiny"))
    gen = torch.Generator().manual_seed(3)
    batch = collate_packed([torch.randn(128, t, generator=gen) for t in (100, 7, 64)], frame_shift_ms=[10.0] * 3)
    with torch.no_grad():
        want = model(batch)
    _close(bundle.model(batch).frame_logits, want.frame_logits, "elastic rows frame_logits")


def test_padding_segment_is_ignored(exported):
    model, bundle = exported["elastic_ast"]
    specs = [torch.randn(128, 48), torch.randn(128, 20)]
    with torch.no_grad():
        want = model(collate_packed(specs)).clip_logits
    _close(bundle.model(collate_packed(specs, pad_to=200)).clip_logits, want, "elastic with pad_to")


@pytest.mark.parametrize("family", list(TINY))
def test_metadata_travels(exported, family):
    model, bundle = exported[family]
    assert bundle.labels == LABELS
    assert bundle.frontend == TINY[family][2]
    assert bundle.meta["audioflex_version"] == __version__
    assert bundle.meta["family"] == family
    assert bundle.meta["model_name"] == TINY[family][0]
    assert bundle.model.contract == model.contract
    assert json.loads(bundle.meta["outputs"])[:2] == ["clip_logits", "embedding"]


def test_no_block_outputs_in_graph(exported):
    _, bundle = exported["passt"]
    with pytest.raises(ValueError, match="torch runtime"):
        bundle.model(torch.randn(1, 128, 135), return_layers=(0,))


def test_bad_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no such ONNX file"):
        load_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        load_onnx(bad)


def test_elastic_frame_substeps_export(tmp_path):
    """frame_substeps=4 (four frame steps per column) exports; the bundle reports the finer hop."""
    torch.manual_seed(0)
    kw = {"depth": 2, "max_time_patches": 4, "frame_head": True, "frame_substeps": 4}
    model = create_model("elastic_ast_tiny", num_classes=len(LABELS), **kw).eval()
    bundle = load_onnx(export_onnx(model, tmp_path / "sub4.onnx", frontend=KaldiFbankConfig(), labels=LABELS,
                                   model_name="elastic_ast_tiny"))
    assert bundle.model.contract == model.contract and bundle.model.contract.frame_step_frames == 4
    gen = torch.Generator().manual_seed(4)
    batch = collate_packed([torch.randn(128, t, generator=gen) for t in (100, 7, 64)], frame_shift_ms=[10.0] * 3)
    with torch.no_grad():
        want = model(batch)
    got = bundle.model(batch)
    assert got.frame_logits.shape == want.frame_logits.shape == (3, 4 * 7, len(LABELS))
    _close(got.frame_logits, want.frame_logits, "elastic frame_substeps frame_logits")
    assert got.frame_hop_s == pytest.approx(want.frame_hop_s) == pytest.approx(0.04)
