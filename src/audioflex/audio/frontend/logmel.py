"""Log-mel front end of HTS-AT (REFERENCE.md §3).

32 kHz, STFT n_fft 1024 / hop 320 with a periodic Hann window, centre + reflect padding, power
spectrum, 64 Slaney mel bins (Slaney mel scale, Slaney area normalisation: librosa's default
``filters.mel``) from 50 Hz to 14 kHz, then ``10 * log10(max(x, 1e-10))`` (no ``top_db``).
10 s -> 1001 frames. The mel matrix is computed here in float64 (no librosa dependency).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from audioflex.audio.frontend.base import Frontend, FrontendConfig, register_frontend

__all__ = ["LogMel", "LogMelConfig", "hz_to_mel_slaney", "mel_to_hz_slaney", "slaney_mel_filters"]

_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney (Auditory Toolbox) mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    high = hz >= _MIN_LOG_HZ
    return np.where(high, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel_slaney`."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    high = mel >= _MIN_LOG_MEL
    return np.where(high, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def slaney_mel_filters(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """Triangular Slaney-mel filters with area normalisation, float64 ``[n_mels, n_fft // 2 + 1]``.

    Same construction as ``librosa.filters.mel(htk=False, norm="slaney")``.
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(
            f"mel range must satisfy 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, "
            f"fmax={fmax}, sample_rate={sample_rate}"
        )
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_edges = np.linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), n_mels + 2)
    hz_edges = mel_to_hz_slaney(mel_edges)
    widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    return weights


@dataclasses.dataclass(frozen=True)
class LogMelConfig(FrontendConfig):
    """Config of :class:`LogMel` (defaults: the HTS-AT recipe)."""

    kind: ClassVar[str] = "logmel"
    sample_rate: int = 32000
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    amin: float = 1e-10

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"LogMelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.amin <= 0:
            raise ValueError(f"LogMelConfig.amin must be positive, got {self.amin}")

    @property
    def hop_s(self) -> float:
        return self.hop_length / self.sample_rate

    @property
    def pad_value(self) -> float:
        """Silence, :attr:`floor_db`."""
        return self.floor_db

    @property
    def mask_value(self) -> None:
        """dB, not normalised (the model's ``bn0`` does that): SpecAugment fills with each clip's
        per-bin mean, as the reference's masks after ``bn0`` do, not with 0 dB (a loud stripe)."""
        return None

    @property
    def floor_db(self) -> float:
        """The dB value of silence (``10 * log10(amin)``), also used for padded frames."""
        return 10.0 * math.log10(self.amin)


class LogMel(Frontend):
    """Waveform ``[B, T]`` -> log-mel power in dB ``[B, n_mels, 1 + T // hop]``, frames ``[B]``.

    With ``lengths`` every clip is computed exactly as if alone (its own reflect padding at its
    end); frames past a clip's end are filled with the silence floor ``10 * log10(amin)`` dB.
    The output is float32 (computed in at least float32 whatever the input dtype).
    """

    config: LogMelConfig

    def __init__(self, config: LogMelConfig | None = None) -> None:
        super().__init__(config or LogMelConfig())
        c = self.config
        mel = slaney_mel_filters(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)
        self.register_buffer("mel_fb", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(c.n_fft, periodic=True), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        return 1 + int(num_samples) // self.config.hop_length

    def _logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` equal-length clips -> ``[B, n_mels, 1 + T // hop]`` dB."""
        c = self.config
        n = wave.shape[-1]
        frames = self.num_frames(n)
        half = c.n_fft // 2
        if n <= half:  # reflect padding needs more samples than the pad: zero-extend, then crop
            wave = nn.functional.pad(wave, (0, half + 1 - n))
        spec = torch.stft(
            wave, c.n_fft, hop_length=c.hop_length, win_length=c.n_fft,
            window=self.window.to(wave.dtype), center=True, pad_mode="reflect",
            return_complex=True,
        )[..., :frames]
        power = torch.view_as_real(spec).pow(2).sum(-1)  # [B, n_freq, T']
        mel = torch.matmul(self.mel_fb.to(power.dtype), power)  # [B, n_mels, T']
        return 10.0 * torch.log10(torch.clamp(mel, min=c.amin))

    def forward(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``wave [B, T]`` (+ valid samples ``lengths [B]``) -> (dB ``[B, F, T']``, frames ``[B]``)."""
        given = lengths
        lengths, lens = self.check_batch(wave, lengths)
        wave = wave.float() if wave.dtype in (torch.float16, torch.bfloat16) else wave
        b, n = wave.shape
        with torch.autocast(wave.device.type, enabled=False):
            if given is None:
                spec = self._logmel(wave)
                frames = torch.full((b,), spec.shape[-1], dtype=torch.long, device=wave.device)
                return spec, frames
            total = self.num_frames(n)
            spec = wave.new_full((b, self.config.n_mels, total), self.config.pad_value)
            for length in sorted(set(lens)):  # clips of equal length share one STFT call
                idx = [i for i, m in enumerate(lens) if m == length]
                part = self._logmel(wave[idx, :length])
                spec[idx, :, : part.shape[-1]] = part
            frames = torch.tensor([self.num_frames(m) for m in lens], device=wave.device)
            return spec, frames


register_frontend(LogMelConfig, LogMel)
