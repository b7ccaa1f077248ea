"""Kaldi-compatible log-mel filterbank (the AST / ElasticAST front end), batched and in pure torch.

Reproduces ``torchaudio.compliance.kaldi.fbank(w - w.mean(), htk_compat=True, use_energy=False,
window_type='hanning', dither=0.0, ...)`` op for op (``snip_edges=True``), then optionally pads or
crops to ``target_length`` frames and normalises as ``(x - norm_mean) / (2 * norm_std)``, which is
what the AST recipes feed their models.

Per clip, in order:

1. the waveform mean over the clip's valid samples is removed (``remove_dc``);
2. frames of ``win`` samples every ``hop`` samples are cut (``1 + (n - win) // hop`` frames; trailing
   samples that do not fill a window are dropped);
3. each frame gets its own mean removed, pre-emphasis with the first sample replicated, a symmetric
   Hann window, zero-padding to the next power of two, ``|rfft|^2``, HTK-mel triangles and
   ``log(max(E, float32 eps))``.

Conventions chosen here (documented and tested):

* A clip shorter than one window (``0 < n < win``) is zero-padded (after its mean is removed) to
  one window and gives **one** frame, so every non-empty clip yields at least one frame. Kaldi would
  return no frame at all. Empty clips (``n == 0``) raise ``ValueError``.
* Frames past a clip's last valid frame (a shorter clip in a batch, or ``target_length`` padding)
  hold raw log-fbank **0**, i.e. ``(0 - norm_mean) / (2 * norm_std)`` after normalisation (+0.467
  with the AudioSet stats). This is the AST recipe's padding, so a clip padded inside a batch gives
  exactly what the recipe gives for the clip padded to that length.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from audioflex.audio.frontend.base import Frontend, FrontendConfig, register_frontend

_MS = 0.001  # kaldi's MILLISECONDS_TO_SECONDS: sizes are int(sample_rate * ms * 0.001)
_EPS = torch.finfo(torch.float32).eps


@dataclasses.dataclass(frozen=True)
class KaldiFbankConfig(FrontendConfig):
    """Config of :class:`KaldiFbank`. Defaults are AST's AudioSet recipe.

    ``high_freq <= 0`` is an offset from the Nyquist frequency (kaldi's convention; 0 = Nyquist).
    ``target_length`` pads (raw value 0) or crops every output to that many frames before
    normalising, as the AST recipe does (1024 for 10 s clips); ``None`` keeps the natural length.
    """

    kind: ClassVar[str] = "kaldi_fbank"
    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    num_mel_bins: int = 128
    low_freq: float = 20.0
    high_freq: float = 0.0
    preemphasis: float = 0.97
    remove_dc: bool = True
    normalize: bool = True
    norm_mean: float = -4.2677393
    norm_std: float = 4.5689974
    target_length: int | None = None

    def __post_init__(self) -> None:
        def bad(name: str, what: str) -> ValueError:
            value = getattr(self, name)
            return ValueError(f"KaldiFbankConfig.{name}={value!r}: {what}")

        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise bad("sample_rate", "must be a positive integer (Hz)")
        if self.sample_rate <= 0:
            raise bad("sample_rate", "must be a positive integer (Hz)")
        if not self.frame_length_ms > 0:
            raise bad("frame_length_ms", "must be > 0")
        if not self.frame_shift_ms > 0:
            raise bad("frame_shift_ms", "must be > 0")
        if self.win_length < 2:
            raise bad("frame_length_ms", "gives a window shorter than 2 samples; make it longer")
        if self.hop_length < 1:
            raise bad("frame_shift_ms", "gives a hop shorter than 1 sample; make it longer")
        if isinstance(self.num_mel_bins, bool) or not isinstance(self.num_mel_bins, int):
            raise bad("num_mel_bins", "must be an integer > 3")
        if self.num_mel_bins <= 3:
            raise bad("num_mel_bins", "must be an integer > 3")
        nyquist = 0.5 * self.sample_rate
        high = self.high_freq + nyquist if self.high_freq <= 0 else self.high_freq
        if not 0.0 <= self.low_freq < nyquist:
            raise bad("low_freq", f"must be in [0, {nyquist:g}) Hz (the Nyquist frequency)")
        if not (0.0 < high <= nyquist and self.low_freq < high):
            raise bad(
                "high_freq",
                f"must give an upper edge in ({self.low_freq:g}, {nyquist:g}] Hz "
                "(values <= 0 are offsets from Nyquist)",
            )
        if not 0.0 <= self.preemphasis <= 1.0:
            raise bad("preemphasis", "must be in [0, 1]")
        if not (math.isfinite(self.norm_std) and self.norm_std > 0):
            raise bad("norm_std", "must be a finite number > 0")
        if not math.isfinite(self.norm_mean):
            raise bad("norm_mean", "must be finite")
        if self.target_length is not None and (
            isinstance(self.target_length, bool) or not isinstance(self.target_length, int) or self.target_length < 1
        ):
            raise bad("target_length", "must be None or a positive integer (frames)")

    @property
    def win_length(self) -> int:
        """Window length in samples (400 at 16 kHz, 25 ms)."""
        return int(self.sample_rate * self.frame_length_ms * _MS)

    @property
    def hop_length(self) -> int:
        """Frame shift in samples (160 at 16 kHz, 10 ms)."""
        return int(self.sample_rate * self.frame_shift_ms * _MS)

    @property
    def n_fft(self) -> int:
        """FFT size: the window length rounded up to a power of two (512 for 400)."""
        return 1 << (self.win_length - 1).bit_length()

    @property
    def pad_value(self) -> float:
        """Raw log fbank 0, normalised when ``normalize`` (the AST recipe's padding)."""
        return (0.0 - self.norm_mean) / (2 * self.norm_std) if self.normalize else 0.0

    @property
    def mask_value(self) -> float | None:
        """0 for the normalised output; raw log fbank (``normalize=False``, about -15..5) is not
        centred, so SpecAugment fills with each clip's per-bin mean there."""
        return 0.0 if self.normalize else None

    @property
    def hop_s(self) -> float:
        """Seconds between consecutive frames."""
        return self.hop_length / self.sample_rate


def _mel(freq: torch.Tensor | float) -> Any:
    if isinstance(freq, torch.Tensor):
        return 1127.0 * (1.0 + freq / 700.0).log()
    return 1127.0 * math.log(1.0 + freq / 700.0)


def kaldi_mel_banks(num_bins: int, n_fft: int, sample_rate: int, low_freq: float, high_freq: float) -> torch.Tensor:
    """HTK-mel triangles as kaldi builds them, ``[num_bins, n_fft // 2 + 1]`` float32.

    Evaluated in float64 and rounded once: kaldi/torchaudio evaluate them in float32, where the
    vectorised ``log`` differs by an ulp between CPUs (AVX2 vs AVX-512) and the weights by up to
    ``~u * mel / band width`` (see :func:`mel_bank_rounding`). The last FFT bin (Nyquist) gets
    weight 0, as in kaldi.
    """
    left, center, right, mel = _mel_grid(num_bins, n_fft, sample_rate, low_freq, high_freq)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp_min(torch.min(up, down), 0.0)
    return F.pad(banks, (0, 1), mode="constant", value=0.0).to(torch.float32)


def mel_bank_rounding(num_bins: int, n_fft: int, sample_rate: int, low_freq: float, high_freq: float) -> torch.Tensor:
    """``[num_bins, n_fft // 2 + 1]`` float64: how far a float32 evaluation of the kaldi weights
    (kaldi, torchaudio) may be from the exact ones: ``u * (2 m + 2 c + r) / delta`` on and just
    around each triangle (``m`` the bin's mel value, ``c``/``r`` the band's centre/right edge,
    ``delta`` its half width, ``u = 2^-24``). Parity tests add it to their conditioning bounds."""
    left, center, right, mel = _mel_grid(num_bins, n_fft, sample_rate, low_freq, high_freq)
    delta = center - left
    err = 2.0**-24 * (2 * mel + 2 * center + right) / delta
    near = (mel >= left - err * delta) & (mel <= right + err * delta)
    return F.pad(torch.where(near, err, 0.0), (0, 1), mode="constant", value=0.0)


def _mel_grid(
    num_bins: int, n_fft: int, sample_rate: int, low_freq: float, high_freq: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 band edges ``[num_bins, 1]`` (left, centre, right) and bin mel values ``[1, n_fft // 2]``."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    fft_bin_width = sample_rate / n_fft
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    mel = _mel(fft_bin_width * torch.arange(n_fft // 2, dtype=torch.float64)).unsqueeze(0)
    return mel_low + b * delta, mel_low + (b + 1.0) * delta, mel_low + (b + 2.0) * delta, mel


class KaldiFbank(Frontend):
    """Kaldi fbank front end: waveform ``[B, T]`` -> (log-mel ``[B, F, T']``, frames ``[B]``).

    See the module docstring for the exact computation and the padding conventions.
    """

    config: KaldiFbankConfig

    def __init__(self, config: KaldiFbankConfig | None = None) -> None:
        config = config if config is not None else KaldiFbankConfig()
        if not isinstance(config, KaldiFbankConfig):
            raise TypeError(f"KaldiFbank needs a KaldiFbankConfig, got {type(config).__name__}")
        super().__init__(config)
        c = config
        self.register_buffer(
            "window",
            torch.hann_window(c.win_length, periodic=False, dtype=torch.float32),
            persistent=False,
        )
        self.register_buffer(
            "mel_banks",
            kaldi_mel_banks(c.num_mel_bins, c.n_fft, c.sample_rate, c.low_freq, c.high_freq),
            persistent=False,
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames for a clip of ``num_samples`` samples, before ``target_length`` (0 for 0)."""
        if num_samples <= 0:
            return 0
        win, hop = self.config.win_length, self.config.hop_length
        return 1 + (max(num_samples, win) - win) // hop

    def _frame_counts(self, lengths: torch.Tensor) -> torch.Tensor:
        win, hop = self.config.win_length, self.config.hop_length
        return 1 + (lengths.clamp(min=win) - win) // hop

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel filterbank of a batch.

        Args:
            wave: ``[B, T]`` (or ``[T]``) waveforms at ``config.sample_rate``; samples past a
                clip's length are ignored.
            lengths: ``[B]`` valid samples per clip (``None``: all ``T``).

        Returns:
            ``spec [B, num_mel_bins, T']`` (normalised unless ``config.normalize`` is False) and
            ``frames [B]`` (int64), the frames computed from real samples (at most ``T'``).
        """
        c = self.config
        spec, lengths = self._run(self._fbank, wave, lengths)
        frames = self._frame_counts(lengths)
        num = spec.shape[-1]
        valid = torch.arange(num, device=spec.device) < frames.unsqueeze(1)  # [B, T']
        spec = spec.masked_fill(~valid.unsqueeze(1), 0.0)
        if c.target_length is not None:
            if num < c.target_length:
                spec = F.pad(spec, (0, c.target_length - num))
            else:
                spec = spec[..., : c.target_length]
            frames = frames.clamp(max=c.target_length)
        if c.normalize:
            spec = (spec - c.norm_mean) / (2 * c.norm_std)
        return spec, frames

    def power(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Power spectra of the kaldi frames (steps 1-3 up to ``|rfft|^2``), before the mel banks.

        Args:
            wave: ``[B, T]`` (or ``[T]``) waveforms; float64 input is computed in float64.
            lengths: ``[B]`` valid samples per clip (``None``: all ``T``).

        Returns:
            ``power [B, n_fft // 2 + 1, T']`` (frames of the padded batch, also past a clip's end)
            and ``frames [B]`` (int64), the frames computed from real samples.
        """
        power, lengths = self._run(self._power, wave, lengths)
        return power.transpose(1, 2), self._frame_counts(lengths)

    def _run(
        self,
        compute: Callable[[torch.Tensor, list[int]], torch.Tensor],
        wave: torch.Tensor,
        lengths: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The checked batch through ``compute`` (``_fbank`` or ``_power``), autocast off.

        ``wave [B, T]`` (or ``[T]``) is computed in float64 when it is float64, else float32;
        returns ``compute``'s output and the checked ``lengths [B]``.
        """
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        lengths, lens = self.check_batch(wave, lengths)
        dtype = torch.float64 if wave.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=wave.device.type, enabled=False):
            out = compute(wave.to(dtype), lens)
        return out, lengths

    def _fbank(self, wave: torch.Tensor, lens: list[int]) -> torch.Tensor:
        """Raw log fbank ``[B, F, T']`` for all frames of the padded batch."""
        power = self._power(wave, lens)  # [B, M, K]
        bsz, m, _ = power.shape
        mel = self.mel_banks.to(power.dtype)
        energies = torch.mm(power.reshape(bsz * m, -1), mel.T)
        eps = torch.tensor(_EPS, dtype=energies.dtype, device=energies.device)
        logmel = torch.max(energies, eps).log()
        return logmel.reshape(bsz, m, -1).transpose(1, 2)

    def _power(self, wave: torch.Tensor, lens: list[int]) -> torch.Tensor:
        """``|rfft|^2`` of every frame of the padded batch, ``[B, M, n_fft // 2 + 1]``."""
        c = self.config
        win, hop = c.win_length, c.hop_length
        total = wave.shape[1]
        if c.remove_dc:
            # each clip's own mean over its valid samples, with torch.mean on exactly those samples
            means = torch.stack([wave[i, :n].mean() for i, n in enumerate(lens)]).unsqueeze(1)
            wave = wave - means
        if any(n < total for n in lens) or total < win:
            idx = torch.arange(total, device=wave.device)
            mask = idx < torch.tensor(lens, device=wave.device).unsqueeze(1)
            wave = torch.where(mask, wave, torch.zeros((), dtype=wave.dtype, device=wave.device))
        if total < win:
            wave = F.pad(wave, (0, win - total))
        frames = wave.unfold(1, win, hop)  # [B, M, win]
        frames = frames - frames.mean(dim=-1, keepdim=True)
        if c.preemphasis != 0.0:
            prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - c.preemphasis * prev
        frames = frames * self.window.to(frames.dtype)
        if c.n_fft != win:
            frames = F.pad(frames, (0, c.n_fft - win))
        return torch.fft.rfft(frames).abs().pow(2.0)


register_frontend(KaldiFbankConfig, KaldiFbank)


def _as_wave(item: Any, sample_rate: int) -> tuple[torch.Tensor, str]:
    """One item of ``compute_norm_stats`` as a mono float32 ``[T]`` tensor and a name for errors."""
    if isinstance(item, (str, os.PathLike)):
        from audioflex.audio.io import load_audio

        return load_audio(item, sample_rate=sample_rate), str(item)
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(np.ascontiguousarray(item))
    if isinstance(item, torch.Tensor):
        wave = item.detach().float()
        if wave.dim() == 2 and wave.shape[0] == 1:
            wave = wave[0]
        if wave.dim() != 1:
            raise ValueError(
                f"compute_norm_stats: waveforms must be mono [T] at {sample_rate} Hz, "
                f"got shape {tuple(item.shape)}; average the channels first"
            )
        return wave, "waveform"
    raise TypeError(
        "compute_norm_stats: items must be file paths or waveforms (torch.Tensor / numpy [T]), "
        f"got {type(item).__name__}"
    )


def compute_norm_stats(
    items: Iterable[str | Path | torch.Tensor | np.ndarray],
    config: KaldiFbankConfig | None = None,
) -> tuple[float, float]:
    """Mean and std of the raw log fbank over a dataset, for ``norm_mean`` / ``norm_std``.

    Statistics are exact (population std) over every valid frame and mel bin of every clip:
    ``target_length`` padding and normalisation are not applied. Streaming: clips are processed
    one at a time and merged with Chan's parallel update in float64, so nothing is kept.

    Args:
        items: file paths (loaded with ``load_audio`` at ``config.sample_rate``, mono) or mono
            waveforms ``[T]`` already at ``config.sample_rate``.
        config: the front-end config (default AST's); only its fbank settings matter.

    Returns:
        ``(mean, std)`` to put in ``KaldiFbankConfig(norm_mean=mean, norm_std=std)``.
    """
    config = config if config is not None else KaldiFbankConfig()
    raw = KaldiFbank(dataclasses.replace(config, normalize=False, target_length=None))
    count, mean, m2 = 0, 0.0, 0.0
    with torch.no_grad():
        for item in items:
            wave, name = _as_wave(item, config.sample_rate)
            if wave.numel() == 0:
                raise ValueError(f"compute_norm_stats: {name} has no samples")
            spec, _ = raw(wave.unsqueeze(0))
            x = spec.double()
            n = x.numel()
            m = x.mean().item()
            s = ((x - m) ** 2).sum().item()
            total = count + n
            delta = m - mean
            mean += delta * n / total
            m2 += s + delta * delta * count * n / total
            count = total
    if count == 0:
        raise ValueError("compute_norm_stats: no clips given; pass a non-empty iterable")
    return mean, math.sqrt(m2 / count)
