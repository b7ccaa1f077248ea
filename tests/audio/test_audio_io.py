"""load_audio / audio_info: formats, windows, resampling, and a clear AudioError for bad files."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile as sf
import torch

import audioflex
from audioflex.audio.io import MAX_CHANNELS, AudioError, AudioInfo, audio_info, load_audio


def _tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: torch.Tensor, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(x.numel())))
    return float(np.argmax(spec) * sr / x.numel())


def _assert_audio_error(exc_info: pytest.ExceptionInfo, filename: str) -> str:
    msg = str(exc_info.value)
    assert isinstance(exc_info.value, AudioError) and isinstance(exc_info.value, ValueError)
    assert "\n" not in msg
    assert filename in msg
    return msg


def test_public_names_are_exported():
    assert audioflex.load_audio is load_audio
    assert audioflex.audio_info is audio_info
    assert audioflex.AudioError is AudioError
    assert audioflex.AudioInfo is AudioInfo


def test_wav_pcm16_round_trip_and_info(tmp_path):
    x = _tone(440, 16000, 0.5)
    path = tmp_path / "tone.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    y = load_audio(path)
    assert y.dtype == torch.float32 and y.shape == (8000,)
    assert (y - torch.from_numpy(x)).abs().max().item() <= 1.0 / 32768 + 1e-7
    info = audio_info(str(path))
    assert info == AudioInfo(16000, 8000, 1, 0.5, "WAV", "PCM_16")


@pytest.mark.parametrize(
    ("ext", "fmt", "subtype", "tol"),
    [("flac", "FLAC", "PCM_16", 1e-4), ("ogg", "OGG", "VORBIS", 0.05)],
)
def test_flac_and_ogg_round_trip(tmp_path, ext, fmt, subtype, tol):
    x = _tone(1000, 16000, 1.0, amp=0.3)
    path = tmp_path / f"tone.{ext}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    info = audio_info(path)
    assert (info.format, info.sample_rate, info.channels) == (fmt, 16000, 1)
    y = load_audio(path)
    assert y.shape == (16000,)
    assert y.abs().max().item() <= 1.0
    assert (y - torch.from_numpy(x)).abs().max().item() < tol
    assert _peak_hz(y, 16000) == pytest.approx(1000, abs=2)


def test_file_like_object(tmp_path):
    x = _tone(300, 8000, 0.25)
    buf = io.BytesIO()
    sf.write(buf, x, 8000, format="WAV", subtype="FLOAT")
    buf.seek(0)
    y = load_audio(buf)
    assert torch.equal(y, torch.from_numpy(x))


def test_resample_8k_to_16k_keeps_length_and_pitch(tmp_path):
    x = _tone(1000, 8000, 1.0)
    path = tmp_path / "tone8k.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    y = load_audio(path, sample_rate=16000)
    assert y.shape == (16000,)
    assert _peak_hz(y, 16000) == pytest.approx(1000, abs=1.5)
    # the tone itself, away from the edges, is preserved
    t = np.arange(16000) / 16000
    expected = 0.5 * np.sin(2 * np.pi * 1000 * t)
    assert np.abs(y.numpy()[200:-200] - expected[200:-200]).max() < 1e-3
    assert torch.equal(load_audio(path, sample_rate=8000), torch.from_numpy(x))


def test_six_channels_mono_average_and_multichannel(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4000, 6)) * 0.1).astype(np.float32)
    path = tmp_path / "six.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    assert audio_info(path).channels == 6
    mono = load_audio(path)
    np.testing.assert_allclose(mono.numpy(), x.mean(axis=1), atol=1e-7)
    multi = load_audio(path, mono=False)
    assert multi.shape == (6, 4000)
    assert torch.equal(multi, torch.from_numpy(x.T.copy()))


def test_window_equals_slice_of_full_read(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((48000, 2)) * 0.1).astype(np.float32)
    for ext, subtype in [("wav", "FLOAT"), ("flac", "PCM_24")]:
        path = tmp_path / f"long.{ext}"
        sf.write(path, x, 16000, subtype=subtype)
        full = load_audio(path, mono=False)
        win = load_audio(path, mono=False, offset=1.25, duration=0.5)
        assert torch.equal(win, full[:, 20000:28000])
        assert torch.equal(load_audio(path, offset=2.5), load_audio(path)[40000:])
        # a window running past the end is cut at the end
        assert load_audio(path, offset=2.9, duration=5.0).shape == (1600,)


def test_window_reads_without_decoding_whole_file(tmp_path, monkeypatch):
    x = np.zeros(160000, dtype=np.float32)
    path = tmp_path / "ten_seconds.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    requested = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    y = load_audio(path, offset=9.0, duration=0.5)
    assert y.shape == (8000,) and requested == [8000]


def test_one_sample_file(tmp_path):
    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.25], dtype=np.float32), 16000, subtype="FLOAT")
    y = load_audio(path)
    assert y.shape == (1,) and y.item() == 0.25
    assert audio_info(path).frames == 1


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "nope.wav")
    assert "no such file" in _assert_audio_error(e, "nope.wav")
    with pytest.raises(AudioError) as e:
        audio_info(tmp_path / "nope.wav")
    _assert_audio_error(e, "nope.wav")


def test_directory(tmp_path):
    d = tmp_path / "clips.wav"
    d.mkdir()
    with pytest.raises(AudioError) as e:
        load_audio(d)
    assert "directory" in _assert_audio_error(e, "clips.wav")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "empty" in _assert_audio_error(e, "empty.wav")


def test_truncated_header(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(440, 16000, 0.1), 16000, subtype="PCM_16")
    path = tmp_path / "cut.wav"
    path.write_bytes(good.read_bytes()[:20])
    with pytest.raises(AudioError) as e:
        load_audio(path)
    msg = _assert_audio_error(e, "cut.wav")
    assert "corrupt" in msg and "ffmpeg" in msg
    with pytest.raises(AudioError):
        audio_info(path)


def test_header_only_has_zero_samples(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(440, 16000, 0.1), 16000, subtype="PCM_16")
    path = tmp_path / "header_only.wav"
    path.write_bytes(good.read_bytes()[:44])
    assert audio_info(path).frames == 0
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "no samples" in _assert_audio_error(e, "header_only.wav")


def test_truncated_data_reads_what_is_there(tmp_path):
    x = _tone(440, 16000, 0.1)
    good = tmp_path / "good.wav"
    sf.write(good, x, 16000, subtype="PCM_16")
    path = tmp_path / "half.wav"
    path.write_bytes(good.read_bytes()[: 44 + 1000])  # 500 of 1600 samples
    y = load_audio(path)
    assert y.shape == (500,)
    np.testing.assert_allclose(y.numpy(), x[:500], atol=1.0 / 32768 + 1e-7)


@pytest.mark.parametrize(("fmt", "subtype", "ext"), [("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"),
                                                     ("AIFF", "PCM_16", "aiff"), ("W64", "PCM_24", "w64")])
def test_truncated_data_is_told_by_audio_info(tmp_path, fmt, subtype, ext):
    """A file cut short (header: 2 s, data: about 0.67 s) is readable, and audio_info says so."""
    good = tmp_path / f"good.{ext}"
    sf.write(good, _tone(440, 16000, 2.0), 16000, format=fmt, subtype=subtype)
    full = audio_info(good)
    assert not full.truncated and full.header_frames == full.frames == 32000
    from audioflex.audio.io import truncation_note

    assert truncation_note(full) is None
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    info = audio_info(cut)
    assert info.truncated and info.header_frames == 32000 and 10000 < info.frames < 11000
    note = truncation_note(info)
    assert "promises 2.000 s" in note and f"holds {info.duration:.3f} s" in note
    assert load_audio(cut).shape == (info.frames,)


def test_symlink_loop_and_broken_link_are_named(tmp_path):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(loop)
    with pytest.raises(AudioError) as e:
        load_audio(loop)
    msg = _assert_audio_error(e, "loop.wav")
    assert "symbolic link loop" in msg and "no such file" not in msg
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "gone.wav")
    with pytest.raises(AudioError) as e:
        audio_info(dangling)
    assert "broken symbolic link" in _assert_audio_error(e, "dangling.wav") and "gone.wav" in str(e.value)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(2).bytes(4096))
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "not a readable audio file" in _assert_audio_error(e, "noise.wav")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = _tone(440, 16000, 0.1)
    x[100] = bad
    path = tmp_path / "nonfinite.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "NaN or Inf" in _assert_audio_error(e, "nonfinite.wav")
    # a window that avoids the bad sample is fine
    assert load_audio(path, offset=0.01).shape == (1440,)


def test_too_many_channels(tmp_path):
    path = tmp_path / "array.wav"
    sf.write(path, np.zeros((10, MAX_CHANNELS + 1), dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert f"{MAX_CHANNELS + 1} channels" in _assert_audio_error(e, "array.wav")


def test_offset_beyond_end_and_bad_window(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _tone(440, 16000, 1.0), 16000, subtype="PCM_16")
    with pytest.raises(AudioError) as e:
        load_audio(path, offset=1.0)
    assert "beyond the end" in _assert_audio_error(e, "short.wav")
    for kwargs in [{"duration": -1.0}, {"duration": 0}, {"offset": -0.5}, {"offset": float("nan")}, {"offset": "soon"}]:
        with pytest.raises(AudioError) as e:
            load_audio(path, **kwargs)
        _assert_audio_error(e, "short.wav")


@pytest.mark.parametrize("sr", [0, -16000, 22050.5, "16k", True])
def test_invalid_sample_rate(tmp_path, sr):
    path = tmp_path / "ok.wav"
    sf.write(path, _tone(440, 16000, 0.1), 16000, subtype="PCM_16")
    with pytest.raises(AudioError) as e:
        load_audio(path, sample_rate=sr)
    assert "sample_rate" in _assert_audio_error(e, "ok.wav")


def test_not_a_path():
    with pytest.raises(AudioError, match="file path"):
        load_audio(12345)  # type: ignore[arg-type]


def test_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sf.write("rel.wav", _tone(440, 16000, 0.1), 16000, subtype="PCM_16")
    assert load_audio(os.path.join(".", "rel.wav")).shape == (1600,)


def test_mp3_is_read(tmp_path):
    x = _tone(1000, 16000, 1.0, amp=0.3)
    path = tmp_path / "tone.mp3"
    sf.write(path, x, 16000, format="MP3")
    info = audio_info(path)
    assert (info.format, info.sample_rate, info.channels) == ("MP3", 16000, 1)
    y = load_audio(path, sample_rate=32000)
    assert abs(y.numel() - 32000) <= 0.05 * 32000
    assert _peak_hz(y, 32000) == pytest.approx(1000, abs=3)
