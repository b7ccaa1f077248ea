"""Front-end base: a frozen, JSON-serialisable config and an ``nn.Module`` built from it.

Every front end maps a batch of waveforms ``[B, T]`` (plus optional valid lengths ``[B]``) to
spectrograms ``[B, F, T']`` (frequency before time) and the number of valid frames per clip ``[B]``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

_FRONTENDS: dict[str, tuple[type[FrontendConfig], type[Frontend]]] = {}


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """Base of the front-end configs. Subclasses set ``kind`` and add their fields."""

    kind: ClassVar[str] = ""
    sample_rate: int = 16000

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, including the ``kind`` used to rebuild the front end."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return {"kind": self.kind, **d}

    def replace(self, **changes: Any) -> FrontendConfig:
        """A copy with some fields changed (e.g. ``frame_shift_ms``)."""
        return dataclasses.replace(self, **changes)

    @property
    def hop_s(self) -> float:
        """Seconds between consecutive frames."""
        raise NotImplementedError

    @property
    def pad_value(self) -> float:
        """The value of a frame past a clip's end, as this front end writes it in a padded batch;
        whoever pads a spectrogram further (a packed model's last, partial patch column, a batch of
        unequal clips) pads with it, so training and inference see the same padding."""
        raise NotImplementedError

    @property
    def mask_value(self) -> float | None:
        """SpecAugment's fill for this front end's output: 0 (the mean of a normalised
        spectrogram), or None where the output is not normalised (each clip's per-bin mean)."""
        return 0.0

    @property
    def window_samples(self) -> int:
        """Samples of one analysis window (``win_length``, else ``n_fft``, else one hop)."""
        win = getattr(self, "win_length", None) or getattr(self, "n_fft", None)
        return int(win) if win else max(1, round(self.hop_s * self.sample_rate))

    def too_short(self, num_samples: int, min_frames: int = 1) -> str | None:
        """Why audio of ``num_samples`` samples (at ``sample_rate``) is too short, and what is done
        with it, or None when it fills ``min_frames`` whole analysis windows (1: one window; a
        packed model's patch size: one patch of real frames)."""
        hop = max(1, round(self.hop_s * self.sample_rate))
        need = self.window_samples + (max(1, min_frames) - 1) * hop
        if num_samples >= need:
            return None
        sr = self.sample_rate
        have = f"{num_samples / sr:.4f} s ({num_samples} samples at {sr} Hz)"
        if min_frames > 1:
            return (
                f"too short: {have} is shorter than one {min_frames}-frame patch ({need / sr:.3f} s at a "
                f"{1000 * self.hop_s:g} ms frame shift); its spectrogram is padded to one patch"
            )
        return (
            f"too short: {have} is shorter than one {1000 * need / sr:g} ms front-end window; "
            "it is padded to one window"
        )


class Frontend(nn.Module):
    """Waveform ``[B, T]`` -> (spectrogram ``[B, F, T']``, frame counts ``[B]``)."""

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_s(self) -> float:
        return self.config.hop_s

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of ``num_samples`` samples."""
        raise NotImplementedError

    @property
    def window_samples(self) -> int:
        """Samples of one analysis window (see :attr:`FrontendConfig.window_samples`)."""
        return self.config.window_samples

    def too_short(self, num_samples: int, min_frames: int = 1) -> str | None:
        """See :meth:`FrontendConfig.too_short`."""
        return self.config.too_short(num_samples, min_frames)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def check_batch(
        self, wave: torch.Tensor, lengths: torch.Tensor | None, min_samples: int = 1
    ) -> tuple[torch.Tensor, list[int]]:
        """Validate ``wave [B, T]`` and ``lengths [B]`` (None: all ``T``); returns lengths as an
        int64 tensor on ``wave``'s device and as host ints. Errors name the front end."""
        name = type(self).__name__
        if wave.ndim != 2:
            raise ValueError(f"{name}: wave must be [B, T], got shape {tuple(wave.shape)}")
        if not wave.is_floating_point():
            raise TypeError(f"{name}: wave must be floating point in [-1, 1], got {wave.dtype}")
        b, t = wave.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=wave.device)
        else:
            lengths = torch.as_tensor(lengths, device=wave.device).long()
            if lengths.shape != (b,):
                raise ValueError(f"{name}: lengths must be [B]={b}, got {tuple(lengths.shape)}")
        lens = lengths.tolist()
        if lens and max(lens) > t:
            raise ValueError(f"{name}: a length ({max(lens)}) exceeds the waveform size ({t})")
        need = max(1, min_samples)
        if lens and min(lens) < need:
            raise ValueError(
                f"{name}: lengths must be at least {need} samples each "
                f"({1000 * need / self.sample_rate:.1f} ms at {self.sample_rate} Hz), got {min(lens)}; "
                "drop empty clips or pad short audio before the front end"
            )
        return lengths, lens


def register_frontend(config_cls: type[FrontendConfig], module_cls: type[Frontend]) -> None:
    """Make ``build_frontend`` know a front-end kind."""
    _FRONTENDS[config_cls.kind] = (config_cls, module_cls)


def _load_all_kinds() -> None:
    import importlib

    for module in ("kaldi", "logmel", "passt"):
        importlib.import_module(f"audioflex.audio.frontend.{module}")


def frontend_config_from_dict(d: dict[str, Any]) -> FrontendConfig:
    """Inverse of ``FrontendConfig.to_dict``."""
    _load_all_kinds()
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _FRONTENDS:
        raise ValueError(f"unknown front-end kind {kind!r}; known: {sorted(_FRONTENDS)}")
    cls = _FRONTENDS[kind][0]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"front-end {kind!r} has no option(s) {sorted(unknown)}")
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = tuple(v)
    return cls(**d)


def build_frontend(config: FrontendConfig | dict[str, Any]) -> Frontend:
    """Front-end module from a config object or its dict."""
    if isinstance(config, dict):
        config = frontend_config_from_dict(config)
    return _FRONTENDS[config.kind][1](config)
