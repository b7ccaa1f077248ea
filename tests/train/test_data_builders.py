"""The training data builders: background-noise recordings for ``augment.background_noise``, the
``augment.speed`` check, SpecAugment's fill per front end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.audio.frontend.passt import PasstMelConfig
from audioflex.train.config import AugmentConfig, load_config
from audioflex.train.data_builders import background_recordings, spec_augment, speed_range

SR = 16000


def _cfg(train: Path, noise: str | None):
    return load_config({"model": {"name": "elastic_ast_tiny"}, "data": {"train": {"path": str(train)}},
                        "augment": {"background_noise": noise}})


def test_background_noise_auto_reads_the_speech_commands_folder(tmp_path: Path) -> None:
    root = tmp_path / "sc"
    (root / "_background_noise_").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(root / "_background_noise_" / "pink.wav", 0.1 * rng.standard_normal(SR), SR)
    sf.write(root / "_background_noise_" / "white.wav", 0.1 * rng.standard_normal(SR // 2), 8000)  # resampled
    (root / "_background_noise_" / "README.md").write_text("not audio")
    noises = background_recordings(_cfg(root, "auto"), SR)
    assert [n.shape[0] for n in noises] == [SR, SR]
    assert background_recordings(_cfg(root, str(root / "_background_noise_")), SR)[0].shape == (SR,)
    assert background_recordings(_cfg(root, None), SR) == []


def test_background_noise_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"augment.background_noise: .*_background_noise_ is not a folder"):
        background_recordings(_cfg(tmp_path, "auto"), SR)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="augment.background_noise: no audio files in"):
        background_recordings(_cfg(tmp_path, str(tmp_path / "empty")), SR)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match=r"augment.background_noise: cannot read .*x.wav"):
        background_recordings(_cfg(tmp_path, str(tmp_path / "bad")), SR)


def test_speed_range_is_checked_with_the_key_named(tmp_path: Path) -> None:
    def cfg(speed):
        return load_config({"model": {"name": "elastic_ast_tiny"}, "data": {"train": {"path": str(tmp_path)}},
                            "augment": {"speed": speed}})

    assert speed_range(cfg([])) == ()
    assert speed_range(cfg([0.9, 1.1])) == (0.9, 1.1)
    for bad in ([1.1], [1.2, 0.9], [0, 1.0], [0.9, 1.0, 1.1]):
        with pytest.raises(ValueError, match=r"augment.speed: expected \[low, high\] speed factors"):
            speed_range(cfg(bad))


def test_training_masks_fill_with_the_front_end_mean() -> None:
    """The trainer's SpecAugment fills HTS-AT's dB log-mel and raw (un-normalised) Kaldi fbank
    with the clip mean, and normalised front ends (Kaldi fbank, PaSST) with 0."""
    aug = AugmentConfig(freq_mask=8, time_mask=40)
    assert spec_augment(aug, LogMelConfig()).mask_value is None
    assert spec_augment(aug, KaldiFbankConfig()).mask_value == 0.0
    assert spec_augment(aug, KaldiFbankConfig(normalize=False)).mask_value is None
    assert spec_augment(aug, PasstMelConfig()).mask_value == 0.0
