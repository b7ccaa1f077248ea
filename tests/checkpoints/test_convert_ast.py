"""Converters of the AST family reproduce the original implementations (shared/fixtures)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from audioflex.checkpoints import CheckpointError, load_checkpoint, load_state_checked, save_checkpoint
from audioflex.checkpoints.convert import ConversionError, get_converter
from audioflex.checkpoints.convert.ast import max_length_for_grid
from audioflex.checkpoints.convert.hf_ast import hf_ast_state_dict
from audioflex.cli import app
from audioflex.models.registry import create_model
from audioflex.packing import collate_packed


def build(conv):
    model = create_model(conv.model_name, **conv.model_args).eval()
    load_state_checked(model, conv.state_dict, strict=True)
    return model


def tol(ref):
    return 1e-4 * max(1.0, ref.abs().max().item())


@pytest.fixture
def hf_folder(tmp_path, fixtures_dir):
    cfg = json.loads((fixtures_dir / "hf_ast.json").read_text())["config"]
    folder = tmp_path / "hf"
    folder.mkdir()
    shutil.copy(fixtures_dir / "hf_ast.safetensors", folder / "model.safetensors")
    hf_cfg = {
        "model_type": "audio-spectrogram-transformer",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "num_mel_bins": 128,
        "max_length": 200,
        "patch_size": 16,
        "frequency_stride": 10,
        "time_stride": 10,
        "layer_norm_eps": 1e-12,
        "qkv_bias": True,
        "id2label": {str(i): f"class{i}" for i in range(7)},
    }
    assert isinstance(cfg, (dict, str))
    (folder / "config.json").write_text(json.dumps(hf_cfg))
    return folder


def test_hf_ast_parity(hf_folder, fixtures_dir):
    io = load_file(str(fixtures_dir / "hf_ast_io.safetensors"))
    conv = get_converter("hf-ast").convert(hf_folder)
    assert conv.labels == [f"class{i}" for i in range(7)]
    assert conv.frontend.target_length == 200
    model = build(conv)
    spec = io["input_values"].transpose(1, 2)  # [B, T, F] -> [B, F, T]
    with torch.no_grad():
        out = model(spec, return_layers=(0, 1))
        feats, _ = model.forward_features(spec)
    assert (out.clip_logits - io["logits"]).abs().max() <= tol(io["logits"])
    assert (out.embedding - io["pooler_output"]).abs().max() <= tol(io["pooler_output"])
    assert (feats - io["last_hidden_state"]).abs().max() <= tol(io["last_hidden_state"])
    for i in (0, 1):
        ref = io[f"layer_output.{i}"]
        assert (out.hidden_states[i] - ref).abs().max() <= tol(ref)


def test_original_ast_parity(tmp_path, fixtures_dir):
    io = load_file(str(fixtures_dir / "hf_ast_io.safetensors"))
    conv = get_converter("ast").convert(fixtures_dir / "hf_ast_original.safetensors", num_heads=4)
    assert conv.model_args["max_length"] == 200 and conv.model_args["num_classes"] == 7
    model = build(conv)
    with torch.no_grad():
        logits = model(io["input_values"].transpose(1, 2)).clip_logits
    assert (logits - io["original_logits"]).abs().max() <= tol(io["original_logits"])
    # the same weights as the HF hub format
    hf = hf_ast_state_dict(load_file(str(fixtures_dir / "hf_ast.safetensors")))
    assert set(hf) == set(conv.state_dict)
    for k in hf:
        assert torch.equal(hf[k], conv.state_dict[k]), k


def test_hf_base_keys_map_to_ast_base(fixtures_dir):
    info = json.loads((fixtures_dir / "hf_ast_base_keys.json").read_text())
    shapes = {e["key"]: tuple(e["shape"]) for e in info["keys_as_saved"]}
    with torch.device("meta"):  # full-size keys and shapes only: no memory, no numbers
        fake = {k: torch.zeros(s) for k, s in shapes.items()}
        mapped = hf_ast_state_dict(fake)
        model = create_model("ast_base", num_classes=shapes["classifier.dense.weight"][0])
    assert next(model.parameters()).is_meta
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == own
    assert sum(p.numel() for p in model.parameters()) == info["n_params"]


def test_max_length_for_grid():
    assert max_length_for_grid(101) == 1024
    assert max_length_for_grid(19) == 200
    assert max_length_for_grid(12) == 128
    assert max_length_for_grid(50) == 512


def test_elasticast_parity(fixtures_dir):
    io = load_file(str(fixtures_dir / "elasticast_io.safetensors"))
    conv = get_converter("elasticast").convert(fixtures_dir / "elasticast.safetensors", num_heads=4)
    assert conv.model_args["attn_scale"] == 1.0 and conv.model_args["max_time_patches"] == 64
    specs = [io[f"input.{i}"][0] for i in range(3)]
    for backend in ("loop", "dense", "flex"):
        model = create_model(conv.model_name, **{**conv.model_args, "backend": backend}).eval()
        load_state_checked(model, conv.state_dict)
        with torch.no_grad():
            one_row = model(collate_packed(specs)).clip_logits
            alone = torch.cat([model(collate_packed([s])).clip_logits for s in specs])
        assert (one_row - io["logits"]).abs().max() <= tol(io["logits"])
        assert (one_row - io["logits_two_rows"]).abs().max() <= tol(io["logits"])
        ref_single = torch.cat([io[f"logits_single.{i}"] for i in range(3)])
        assert (alone - ref_single).abs().max() <= tol(ref_single)


def test_elasticast_module_prefix_and_default_scale_differs(tmp_path, fixtures_dir):
    sd = load_file(str(fixtures_dir / "elasticast.safetensors"))
    path = tmp_path / "elasticast.pth"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}}, path)
    conv = get_converter("elasticast").convert(path, num_heads=4)
    io = load_file(str(fixtures_dir / "elasticast_io.safetensors"))
    specs = [io[f"input.{i}"][0] for i in range(3)]
    model = build(conv)
    with torch.no_grad():
        assert (model(collate_packed(specs)).clip_logits - io["logits"]).abs().max() <= tol(io["logits"])
    scaled = create_model(conv.model_name, **{**conv.model_args, "attn_scale": None}).eval()
    load_state_checked(scaled, conv.state_dict)
    with torch.no_grad():
        assert (scaled(collate_packed(specs)).clip_logits - io["logits"]).abs().max() > 1e-3


def test_ast_to_elastic_initialisation(tmp_path, fixtures_dir):
    conv = get_converter("ast-to-elastic").convert(
        fixtures_dir / "hf_ast_original.safetensors", num_heads=4, max_time_patches=16
    )
    model = build(conv)
    src = get_converter("ast").convert(fixtures_dir / "hf_ast_original.safetensors", num_heads=4).state_dict
    assert torch.equal(model.patch_embed.weight, src["patch_embed.weight"].reshape(64, 256))
    assert torch.equal(model.blocks[1].attn.qkv.weight, src["blocks.1.attn.qkv.weight"])
    assert model.pos_embed_freq.shape == (8, 64) and model.pos_embed_time.shape == (16, 64)
    with torch.no_grad():
        out = model(collate_packed([torch.randn(128, 300), torch.randn(128, 50)]))
    assert torch.isfinite(out.clip_logits).all()
    # new classifier size: head left out, loads with strict=False
    conv2 = get_converter("ast-to-elastic").convert(
        fixtures_dir / "hf_ast_original.safetensors", num_heads=4, num_classes=3
    )
    m2 = create_model(conv2.model_name, **conv2.model_args)
    with pytest.raises(CheckpointError, match="missing"):
        load_state_checked(m2, conv2.state_dict, strict=True)
    load_state_checked(m2, conv2.state_dict, strict=False)


def test_converter_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConversionError, match="x.pth"):
        get_converter("ast").convert(bad)
    save_file({"foo": torch.zeros(1)}, str(tmp_path / "y.safetensors"))
    with pytest.raises(ConversionError, match="y.safetensors"):
        get_converter("elasticast").convert(tmp_path / "y.safetensors")
    with pytest.raises(KeyError, match="known formats"):
        get_converter("nope")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_foreign_files_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "obj": Evil()}, path)
    with pytest.raises(ConversionError, match="weights-only"):
        get_converter("ast").convert(path)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    model = create_model("elastic_ast_tiny", num_classes=3, depth=2)
    from audioflex.audio.frontend.kaldi import KaldiFbankConfig

    fe = KaldiFbankConfig(frame_shift_ms=20)
    save_checkpoint(tmp_path / "ck", model, frontend=fe, labels=["a", "b", "c"])
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.labels == ["a", "b", "c"] and ck.frontend.config == fe
    assert ck.model_name == "elastic_ast_tiny" and not ck.model.training
    for (k, v), (k2, v2) in zip(model.state_dict().items(), ck.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    # overwrite is atomic and leaves no temp dirs
    save_checkpoint(tmp_path / "ck", model, frontend=fe, labels=["a", "b", "c"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    # a checkpoint that does not fit: edit the config
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    meta["model_args"]["num_classes"] = 4
    meta["model_args"]["depth"] = 1
    (tmp_path / "ck" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "ck")
    msg = str(e.value)
    assert "unexpected (12)" in msg and "blocks.1.attn.proj.bias" in msg
    assert "misshaped" in msg and "head.weight: checkpoint (3, 192) vs model (4, 192)" in msg
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path / "nothing")


def test_ast_to_elastic_from_imagenet_vit(tmp_path):
    g = torch.Generator().manual_seed(0)
    d, side = 32, 14
    vit = {
        "cls_token": torch.randn(1, 1, d, generator=g),
        "pos_embed": torch.randn(1, 1 + side * side, d, generator=g),
        "patch_embed.proj.weight": torch.randn(d, 3, 16, 16, generator=g),
        "patch_embed.proj.bias": torch.randn(d, generator=g),
        "norm.weight": torch.ones(d),
        "norm.bias": torch.zeros(d),
        "head.weight": torch.randn(1000, d, generator=g),
        "head.bias": torch.zeros(1000),
    }
    src = create_model("ast_tiny", embed_dim=d, depth=2, num_heads=2)
    vit.update({k: v for k, v in src.state_dict().items() if k.startswith("blocks.")})
    path = tmp_path / "vit.pth"
    torch.save(vit, path)
    with pytest.raises(ConversionError, match="num_classes"):
        get_converter("ast-to-elastic").convert(path, num_heads=2)
    conv = get_converter("ast-to-elastic").convert(path, num_heads=2, num_classes=5)
    assert conv.model_args["num_mel_bins"] == 128 and conv.model_args["num_classes"] == 5
    model = create_model(conv.model_name, **conv.model_args)
    load_state_checked(model, conv.state_dict, strict=False)
    summed = vit["patch_embed.proj.weight"].sum(1).reshape(d, 256)
    assert torch.allclose(model.patch_embed.weight, summed)
    assert model.pos_embed_freq.shape == (8, d)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(collate_packed([torch.randn(128, 100)])).clip_logits).all()


def _with_head(sd, prefix, classes, g):
    """A copy of a state dict whose classifier ``prefix.weight/bias`` has ``classes`` outputs."""
    out = dict(sd)
    d = sd[f"{prefix}.weight"].shape[1]
    out[f"{prefix}.weight"] = torch.randn(classes, d, generator=g)
    out[f"{prefix}.bias"] = torch.randn(classes, generator=g)
    return out


@pytest.mark.parametrize(
    "classes,mean,std",
    [(527, -4.2677393, 4.5689974), (50, -6.6268077, 5.358466), (35, -6.845978, 5.5654526), (7, -4.2677393, 4.5689974)],
)
def test_ast_recipe_normalisation_by_head_size(tmp_path, fixtures_dir, classes, mean, std):
    """The original AST recipes normalise with dataset statistics that are not in the .pth: the
    converter picks them by the released models' head sizes (AudioSet 527, ESC-50 50, Speech
    Commands 35; anything else: AudioSet's, with a note)."""
    sd = load_file(str(fixtures_dir / "hf_ast_original.safetensors"))
    path = tmp_path / "ast.safetensors"
    save_file(_with_head(sd, "module.mlp_head.1", classes, torch.Generator().manual_seed(classes)), str(path))
    conv = get_converter("ast").convert(path, num_heads=4)
    assert (conv.frontend.norm_mean, conv.frontend.norm_std) == (mean, std)
    assert conv.frontend.target_length == 200 and conv.model_args["norm_eps"] == 1e-6
    assert any("normalisation" in n for n in conv.notes)
    if classes == 7:
        assert any("no released AST recipe" in n for n in conv.notes)
    over = get_converter("ast").convert(path, num_heads=4, dataset="speechcommands")
    assert (over.frontend.norm_mean, over.frontend.norm_std) == (-6.845978, 5.5654526)
    own = get_converter("ast").convert(path, num_heads=4, norm_mean=-5.0, norm_std=3.0)
    assert (own.frontend.norm_mean, own.frontend.norm_std) == (-5.0, 3.0)
    with pytest.raises(ConversionError, match=r"ast\.safetensors.*known AST recipes"):
        get_converter("ast").convert(path, num_heads=4, dataset="vggsound")
    with pytest.raises(ConversionError, match="both norm_mean"):
        get_converter("ast").convert(path, num_heads=4, norm_mean=-5.0)


def test_speechcommands_ast_cli_records_recipe_frontend(tmp_path, fixtures_dir):
    """`audioflex convert ast` of a 35-class checkpoint stores the Speech Commands recipe's front end."""
    sd = load_file(str(fixtures_dir / "hf_ast_original.safetensors"))
    path = tmp_path / "sc.safetensors"
    save_file(_with_head(sd, "module.mlp_head.1", 35, torch.Generator().manual_seed(0)), str(path))
    res = CliRunner().invoke(app, ["convert", "ast", str(path), str(tmp_path / "out"), "-o", "num_heads=4"])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(tmp_path / "out")
    cfg = ck.frontend.config
    assert (cfg.norm_mean, cfg.norm_std, cfg.target_length) == (-6.845978, 5.5654526, 200)


@pytest.mark.parametrize(
    "classes,mean,std", [(527, -4.414, 4.905), (309, -5.08, 4.453), (1251, -5.842545, 3.88305), (10, -4.414, 4.905)]
)
def test_elasticast_recipe_normalisation_by_head_size(tmp_path, fixtures_dir, classes, mean, std):
    sd = load_file(str(fixtures_dir / "elasticast.safetensors"))
    path = tmp_path / "e.safetensors"
    save_file(_with_head(sd, "head", classes, torch.Generator().manual_seed(classes)), str(path))
    conv = get_converter("elasticast").convert(path, num_heads=4)
    assert (conv.frontend.norm_mean, conv.frontend.norm_std) == (mean, std)
    assert conv.model_args["attn_scale"] == 1.0 and conv.frontend.target_length is None
    assert any("omits the 1/sqrt(d)" in n for n in conv.notes)
    scaled = get_converter("elasticast").convert(path, num_heads=4, attn_scale=None)
    assert any("differs from the official" in n for n in scaled.notes)
