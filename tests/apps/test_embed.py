"""``audioflex embed`` library side: inputs, formats, resume, bad files, long files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflex import hear
from audioflex.apps.embed import collect_inputs, embed_files, load_embeddings
from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.checkpoints.io import save_checkpoint
from audioflex.models.registry import create_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    m = create_model("elastic_ast_tiny", embed_dim=32, depth=1, num_heads=2, num_classes=4, num_mel_bins=32,
                     max_time_patches=8)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "east", m, frontend=KaldiFbankConfig(num_mel_bins=32))


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", 0.3 * rng.standard_normal(16000).astype(np.float32), 16000)
    sf.write(root / "sub" / "b.flac", 0.3 * rng.standard_normal(22050 * 2), 22050)  # resampled
    (root / "broken.wav").write_bytes(b"RIFF not really audio")
    (root / "notes.txt").write_text("ignored")
    return root


def test_npy_scene_resume_and_bad_files(ckpt: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rep = embed_files(data, ckpt, out, progress=False)
    assert sorted(rep.written) == ["a", "sub/b"]
    assert len(rep.failed) == 1 and "broken.wav" in rep.failed[0][0]
    a = np.load(out / "a.npy")
    assert a.shape == (rep.embedding_size,) and a.dtype == np.float32
    model = hear.load_model(str(ckpt))
    x = torch.from_numpy(sf.read(data / "a.wav", dtype="float32")[0])[None]
    assert np.allclose(a, hear.get_scene_embeddings(x, model)[0].numpy(), atol=1e-5)
    # resume: nothing recomputed, files untouched
    mtime = (out / "a.npy").stat().st_mtime_ns
    rep2 = embed_files(data, ckpt, out, progress=False)
    assert sorted(rep2.skipped) == ["a", "sub/b"] and not rep2.written
    assert (out / "a.npy").stat().st_mtime_ns == mtime
    assert not list(out.rglob("*.tmp"))
    # other options in the same folder are refused
    with pytest.raises(ValueError, match="other settings"):
        embed_files(data, ckpt, out, progress=False, layers=[0])


def test_timestamp_npy_long_file_streams(ckpt: Path, tmp_path: Path) -> None:
    x = (0.2 * np.random.default_rng(1).standard_normal(16000 * 3)).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, 16000, subtype="FLOAT")
    out = tmp_path / "o"
    rep = embed_files(tmp_path / "long.wav", ckpt, out, kind="timestamp", progress=False, stream_s=0.7)
    assert rep.written == ["long"]
    emb = np.load(out / "long.npy")
    ts = json.loads((out / "long.timestamps.json").read_text())
    assert emb.shape == (61, rep.embedding_size) and len(ts) == 61 and ts[-1] == 3000.0
    ref, ref_ts = hear.get_timestamp_embeddings(torch.from_numpy(x)[None], hear.load_model(str(ckpt)))
    assert np.allclose(emb, ref[0].numpy(), atol=1e-5)
    assert np.allclose(ts, ref_ts[0].numpy())


def test_timestamp_write_interrupted_leaves_nothing(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed in the middle of a file (here: an error after its first block) leaves no
    partial .npy or temporary file, so the resumed run embeds the file again."""
    from audioflex.hear.embedder import EmbeddingModel

    sf.write(tmp_path / "x.wav", np.zeros(16000 * 2, np.float32), 16000)
    real = EmbeddingModel.iter_timestamp_blocks

    def dies(self, source):  # noqa: ANN001, ANN202
        it = real(self, source)
        yield next(it)
        raise KeyboardInterrupt

    monkeypatch.setattr(EmbeddingModel, "iter_timestamp_blocks", dies)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        embed_files(tmp_path / "x.wav", ckpt, out, kind="timestamp", progress=False, stream_s=0.5)
    assert not list(out.glob("x*")) and not list(out.glob(".*tmp"))
    monkeypatch.setattr(EmbeddingModel, "iter_timestamp_blocks", real)
    rep = embed_files(tmp_path / "x.wav", ckpt, out, kind="timestamp", progress=False, stream_s=0.5)
    assert rep.written == ["x"] and np.load(out / "x.npy").shape == (41, rep.embedding_size)


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_single_file_formats(ckpt: Path, data: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / fmt
    for kind in ("scene", "timestamp"):
        rep = embed_files([data / "a.wav", data / "sub"], ckpt, out / kind, kind=kind, fmt=fmt, progress=False)
        assert rep.output == out / kind / f"embeddings.{fmt}" and rep.output.is_file()
        got = load_embeddings(out / kind)
        assert sorted(got) == ["a", "b"]
        parts = load_embeddings(out / kind / "parts")
        for key in got:
            assert np.array_equal(got[key][0], parts[key][0])
        emb, ts = got["b"]
        if kind == "scene":
            assert ts is None and emb.shape == (rep.embedding_size,)
        else:
            assert emb.shape == (41, rep.embedding_size) and ts[-1] == 2000.0


def test_inputs_manifest_and_errors(data: Path, tmp_path: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text(f"{data / 'a.wav'}\n# comment\n{data / 'sub' / 'b.flac'}\n")
    assert [k for k, _ in collect_inputs(lst)] == ["a", "b"]
    man = tmp_path / "m.csv"
    man.write_text(f"path,label\n{data / 'a.wav'},x\n")
    assert [p.name for _, p in collect_inputs(man)] == ["a.wav"]
    with pytest.raises(FileNotFoundError, match="nope"):
        collect_inputs(tmp_path / "nope.wav")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="same output name"):
        collect_inputs([data / "a.wav", tmp_path / "x" / "a.wav"])
    with pytest.raises(ValueError, match="kind"):
        embed_files(data, "ck", tmp_path / "o", kind="frames")


# ---------------------------------------------------------------------------- bad inputs, names


def _cli_embed(*args: object):  # noqa: ANN202
    from typer.testing import CliRunner

    from audioflex.cli import app

    return CliRunner().invoke(app, ["embed", *map(str, args), "--no-progress"])


def test_bad_inputs_do_not_stop_the_good_ones(ckpt: Path, data: Path, tmp_path: Path) -> None:
    """A missing file, a folder without audio and a symlink loop among the inputs: the good file is
    embedded, each bad input is reported (one line each in the CLI) and the exit status is 1."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no audio here")
    loop = tmp_path / "loop.wav"
    loop.symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(loop)
    missing = tmp_path / "missing.wav"
    inputs = [data / "a.wav", missing, empty, loop]
    rep = embed_files(inputs, ckpt, tmp_path / "lib", progress=False)
    assert rep.written == ["a"] and (tmp_path / "lib" / "a.npy").is_file()
    failed = dict(rep.failed)
    assert set(failed) == {str(missing), str(empty), str(loop)}
    assert "no such file" in failed[str(missing)] and "no audio files" in failed[str(empty)]
    assert "symbolic link loop" in failed[str(loop)]
    r = _cli_embed(*inputs, "-c", ckpt, "-o", tmp_path / "cli")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["written"] == 1 and (tmp_path / "cli" / "a.npy").is_file()
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 3 and all(any(str(p) in ln for ln in lines) for p in (missing, empty, loop)), r.stderr
    assert "Traceback" not in r.output + r.stderr


def test_embed_exit_status_agrees_with_tag_and_detect(ckpt: Path, data: Path, tmp_path: Path) -> None:
    r = _cli_embed(data / "broken.wav", "-c", ckpt, "-o", tmp_path / "o1")  # every input fails
    assert r.exit_code == 1 and json.loads(r.stdout)["written"] == 0
    assert sum(ln.startswith("error:") and "broken.wav" in ln for ln in r.stderr.splitlines()) == 1, r.stderr
    r = _cli_embed(data, "-c", ckpt, "-o", tmp_path / "o2")  # one of three fails
    assert r.exit_code == 1 and json.loads(r.stdout)["written"] == 2
    r = _cli_embed(data / "a.wav", "-c", ckpt, "-o", tmp_path / "o3")  # none fails
    assert r.exit_code == 0, r.output


def test_same_stem_other_extension_get_unique_names(ckpt: Path, tmp_path: Path) -> None:
    """x.flac and x.opus (one folder, or given one by one) keep their extension in the key; other
    keys are unchanged, and a second run finds every output (resumable)."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "src" / "in"
    folder.mkdir(parents=True)
    sf.write(folder / "x.flac", 0.3 * rng.standard_normal(16000), 16000)
    sf.write(folder / "x.opus", 0.3 * rng.standard_normal(48000).astype(np.float32), 48000, format="OGG",
             subtype="OPUS")
    sf.write(folder / "y.wav", 0.3 * rng.standard_normal(16000).astype(np.float32), 16000)
    out = tmp_path / "out"
    rep = embed_files(folder, ckpt, out, progress=False)
    assert sorted(rep.written) == ["x.flac", "x.opus", "y"] and not rep.failed
    assert sorted(load_embeddings(out)) == ["x.flac", "x.opus", "y"]
    assert not np.array_equal(np.load(out / "x.flac.npy"), np.load(out / "x.opus.npy"))
    again = embed_files(folder, ckpt, out, progress=False)
    assert sorted(again.skipped) == ["x.flac", "x.opus", "y"] and not again.written
    files = [folder / "x.flac", folder / "x.opus", folder / "y.wav"]
    assert [k for k, _ in collect_inputs(files)] == ["x.flac", "x.opus", "y"]
    rep = embed_files(files, ckpt, tmp_path / "npz", fmt="npz", progress=False)
    assert sorted(load_embeddings(tmp_path / "npz")) == ["x.flac", "x.opus", "y"]
    # same name and extension in two folders given one by one: reported, and the hint is true
    other = tmp_path / "src" / "other"
    other.mkdir()
    sf.write(other / "y.wav", 0.3 * rng.standard_normal(16000).astype(np.float32), 16000)
    rep = embed_files([folder / "y.wav", other / "y.wav", folder / "x.flac"], ckpt, tmp_path / "o2", progress=False)
    assert rep.written == ["x"] and len(rep.failed) == 2
    assert all("same output name" in e and "give a folder holding both" in e for _, e in rep.failed)
    rep = embed_files(tmp_path / "src", ckpt, tmp_path / "all", progress=False)
    assert sorted(rep.written) == ["in/x.flac", "in/x.opus", "in/y", "other/y"] and not rep.failed
