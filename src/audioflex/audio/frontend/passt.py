"""PaSST front end: pre-emphasis, STFT power, Kaldi mel banks, log and a fixed affine scaling.

Reproduces ``AugmentMelSTFT`` of hear21passt / kkoutini/PaSST in eval mode (REFERENCE.md §4):

1. pre-emphasis ``y[n] = x[n + 1] - 0.97 x[n]`` (one sample shorter than the input);
2. ``torch.stft(n_fft=1024, hop=320, win_length=800, hann(800, periodic=False), center=True,
   reflect)``, power ``re² + im²``;
3. 128 Kaldi mel banks (HTK mel, triangles in the mel domain, no area normalisation) between
   ``fmin`` and ``fmax`` plus a zero column for the Nyquist bin;
4. ``log(x + 1e-5)``, then ``(x + 4.5) / 5``.

The reference jitters ``fmin``/``fmax`` inside the front end in training mode; here the front end is
always deterministic and the jitter is the explicit augmentation :func:`passt_mel_jitter`.
SpecAugment-style masking (the reference's ``freqm``/``timem``) belongs to ``audio.augment``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from audioflex.audio.frontend.base import Frontend, FrontendConfig, register_frontend
from audioflex.audio.frontend.kaldi import kaldi_mel_banks


@dataclasses.dataclass(frozen=True)
class PasstMelConfig(FrontendConfig):
    """Config of :class:`PasstMel` (defaults = the released PaSST models, 32 kHz, 10 ms hop)."""

    kind = "passt_mel"
    sample_rate: int = 32000
    n_mels: int = 128
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    fmin: float = 0.0
    fmax: float = 15000.0
    preemphasis: float = 0.97
    log_offset: float = 1e-5
    norm_shift: float = 4.5
    norm_scale: float = 5.0

    def __post_init__(self) -> None:
        if self.n_fft % 2 or self.win_length > self.n_fft:
            raise ValueError(
                f"PasstMelConfig: n_fft ({self.n_fft}) must be even and >= win_length "
                f"({self.win_length})"
            )
        if self.n_mels <= 3:
            raise ValueError(f"PasstMelConfig: n_mels must be > 3, got {self.n_mels}")
        if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(
                f"PasstMelConfig: need 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, "
                f"fmax={self.fmax}, sample_rate={self.sample_rate}"
            )
        if self.hop_length <= 0:
            raise ValueError(f"PasstMelConfig: hop_length must be positive, got {self.hop_length}")

    @property
    def pad_value(self) -> float:
        """Normalised log-mel of silence (zero power)."""
        return (math.log(self.log_offset) + self.norm_shift) / self.norm_scale

    @property
    def hop_s(self) -> float:
        return self.hop_length / self.sample_rate


def passt_mel_matrix(config: PasstMelConfig, fmin: float | None = None,
                     fmax: float | None = None) -> torch.Tensor:
    """Mel matrix ``[n_mels, n_fft // 2 + 1]`` of ``config``: Kaldi triangles
    (:func:`~audioflex.audio.frontend.kaldi.kaldi_mel_banks`: HTK mel scale, peak 1, no area
    normalisation, zero column for the Nyquist bin). ``fmax <= 0`` counts from Nyquist."""
    lo = config.fmin if fmin is None else fmin
    hi = config.fmax if fmax is None else fmax
    nyquist = 0.5 * config.sample_rate
    top = hi + nyquist if hi <= 0.0 else hi
    if not 0.0 <= lo < top <= nyquist:
        raise ValueError(f"passt_mel_matrix: need 0 <= fmin < fmax <= {nyquist}, got {lo}, {hi}")
    return kaldi_mel_banks(config.n_mels, config.n_fft, config.sample_rate, lo, hi)


class PasstMel(Frontend):
    """PaSST log-mel: waveform ``[B, T]`` at 32 kHz -> (``[B, n_mels, T']``, frames ``[B]``).

    ``T' = (T - 1) // hop + 1`` (10 s -> 1000 frames). With ``lengths``, each clip is treated as if
    it were alone (its reflect padding uses its own last samples), so a clip inside a padded batch
    gives the same valid frames as the clip by itself; frames past a clip's end hold the value
    of silence ``(log(1e-5) + 4.5) / 5``. Clips need at least ``n_fft // 2 + 2`` samples.
    The log-mel is always float32 (autocast disabled); :meth:`power` also computes in float64.
    """

    config: PasstMelConfig

    def __init__(self, config: PasstMelConfig | None = None) -> None:
        super().__init__(config or PasstMelConfig())
        c = self.config
        self.register_buffer(
            "window", torch.hann_window(c.win_length, periodic=False), persistent=False
        )
        self.register_buffer(
            "preemphasis_kernel", torch.tensor([[[-c.preemphasis, 1.0]]]), persistent=False
        )
        self.register_buffer("mel_matrix", passt_mel_matrix(c), persistent=False)

    @property
    def min_samples(self) -> int:
        """Shortest accepted clip (reflect padding needs more samples than ``n_fft // 2``)."""
        return self.config.n_fft // 2 + 2

    def num_frames(self, num_samples: int) -> int:
        """Frames for a clip of ``num_samples`` samples (one sample is lost to pre-emphasis)."""
        return (num_samples - 1) // self.config.hop_length + 1

    def power(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-emphasis + STFT power: ``[B, T]`` -> (``[B, n_fft // 2 + 1, T']``, frames ``[B]``).

        Computed in float32, or in float64 for float64 input.
        """
        c = self.config
        lengths, _ = self.check_batch(wave, lengths, self.min_samples)
        with torch.autocast(device_type=wave.device.type, enabled=False):
            x = wave.double() if wave.dtype == torch.float64 else wave.float()
            y = F.conv1d(x.unsqueeze(1), self.preemphasis_kernel.to(x.dtype)).squeeze(1)  # [B, T - 1]
            n = lengths - 1  # valid pre-emphasised samples per clip
            pad = c.n_fft // 2
            # Per-clip reflect padding (== torch.stft(center=True) on each clip alone).
            pos = torch.arange(y.shape[1] + 2 * pad, device=y.device) - pad  # [P]
            nn_ = n.unsqueeze(1)
            src = pos.abs().unsqueeze(0).expand(y.shape[0], -1)
            src = torch.where(src >= nn_, 2 * (nn_ - 1) - src, src)
            inside = pos.unsqueeze(0) < nn_ + pad
            src = src.clamp(0, y.shape[1] - 1)
            padded = torch.where(inside, torch.gather(y, 1, src), y.new_zeros(()))
            spec = torch.stft(
                padded, c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                window=self.window.to(x.dtype), center=False, normalized=False, return_complex=True,
            )
            power = torch.view_as_real(spec).pow(2).sum(-1)
        frames = torch.div(n, c.hop_length, rounding_mode="floor") + 1
        return power, frames

    def mel(
        self, power: torch.Tensor, frames: torch.Tensor, mel_matrix: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Power ``[B, n_fft // 2 + 1, T']`` -> normalised log-mel ``[B, n_mels, T']``."""
        c = self.config
        m = self.mel_matrix if mel_matrix is None else mel_matrix
        with torch.autocast(device_type=power.device.type, enabled=False):
            mel = torch.matmul(m.to(power.device, torch.float32), power)
            mel = (mel + c.log_offset).log()
            mel = (mel + c.norm_shift) / c.norm_scale
        valid = torch.arange(mel.shape[-1], device=mel.device) < frames.unsqueeze(1)  # [B, T']
        return torch.where(valid.unsqueeze(1), mel, mel.new_full((), c.pad_value))

    def forward(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``wave [B, T]`` (valid ``lengths [B]``) -> (log-mel ``[B, n_mels, T']``, frames ``[B]``)."""
        power, frames = self.power(wave, lengths)
        return self.mel(power, frames), frames


def passt_mel_jitter(
    frontend: PasstMel,
    wave: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    fmin_range: int = 10,
    fmax_range: int = 2000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PaSST's training-time mel jitter as an explicit augmentation.

    Like ``frontend(wave, lengths)`` but with one random mel matrix for the whole batch (as the
    reference): ``fmin + randint(fmin_range)`` and ``fmax + fmax_range // 2 - randint(fmax_range)``
    (defaults: fmin in [0, 10) Hz, fmax in (14000, 15000 + 1000] Hz). ``generator`` (CPU) makes the
    draw reproducible. Returns (log-mel ``[B, n_mels, T']``, frames ``[B]``).
    """
    if fmin_range < 1 or fmax_range < 1:
        raise ValueError(
            f"passt_mel_jitter: fmin_range and fmax_range must be >= 1, got {fmin_range}, "
            f"{fmax_range}"
        )
    c = frontend.config
    fmin = c.fmin + int(torch.randint(fmin_range, (1,), generator=generator))
    fmax = c.fmax + fmax_range // 2 - int(torch.randint(fmax_range, (1,), generator=generator))
    fmax = min(fmax, c.sample_rate / 2)
    power, frames = frontend.power(wave, lengths)
    matrix = passt_mel_matrix(c, fmin=fmin, fmax=fmax).to(power.device)
    return frontend.mel(power, frames, matrix), frames


register_frontend(PasstMelConfig, PasstMel)
