"""Training configuration: dataclasses read from / written to YAML, with ``a.b=value`` overrides.

A config file mirrors :class:`TrainConfig`::

    model: {name: elastic_ast_tiny, kwargs: {depth: 4}}
    frontend: {frame_shift_ms: 10}          # overrides of the model's default front end
    data: {train: {path: data/esc50, exclude_folds: [1]}, valid: {path: data/esc50, folds: [1]}}
    optim: {name: adamw, lr: 1.0e-4, warmup_steps: 100}
    max_steps: 1000

``--set optim.lr=3e-4`` style overrides are parsed with YAML (``true``, ``[10, 20]``, ``null``).
Unknown keys are errors that list the known ones, in ``model.kwargs`` too (checked against the
registered model's builder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit :class:`TrainConfig` (names the key)."""


@dataclass
class ModelConfig:
    """Which model to train.

    ``name``: a registered model (``audioflex models``); ``kwargs`` override its defaults
    (``num_classes`` and ``num_mel_bins`` are set from the data and front end). ``init_from``: a
    checkpoint directory to start from (e.g. a converted AST); its weights are loaded with
    ``init_strict`` (default False: missing/unexpected keys are logged) and tensors whose shape
    differs (the classifier of another label set) are left freshly initialised. With
    ``name: null`` the checkpoint's own model name and arguments are used.
    """

    name: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    init_strict: bool = False


@dataclass
class DataSpec:
    """One dataset selection: ``read_dataset(path, kind)`` then a split and/or folds.

    ``kind: shards`` (training set only): ``path`` is a directory of WebDataset tar shards written
    by ``audioflex shard`` (labels from its ``labels.json``); clips are streamed, not indexed, so
    ``split``/``folds`` do not apply (shard the selection you want).
    """

    path: str | None = None
    kind: str | None = None
    split: str | None = None
    folds: list[int] | None = None
    exclude_folds: list[int] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Data, batching and crop policy.

    ``max_seconds`` caps native-length clips (packed models); ``clip_seconds`` is the crop of
    fixed-length models (default: the front end's ``target_length`` span). ``max_tokens`` is the
    per-rank token budget of packed batches; ``batch_size`` the per-rank clips of fixed models.
    ``balanced``: AudioSet-style class-balanced sampling with replacement, ``epoch_size`` clips
    per epoch (default: the dataset size). ``multilabel``: None = inferred (any clip with more
    than one label).

    ``random_crop_frames: [lo, hi]`` (packed models, training): each clip is cropped to
    ``U{lo .. min(T, hi)}`` frames at its own frame shift (ElasticAST: ``[384, 3072]``; raise
    ``max_seconds`` to 30.72 or null so clips are not capped first). ``frontend_device``:
    ``workers`` (the front end runs per clip in the DataLoader workers, on CPU) or ``device``
    (workers return waveforms; the loop runs the front end batched per frame shift on the training
    device — the same batches, less CPU work on GPU machines).

    Shard streams (``train.kind: shards``): ``shuffle_buffer`` clips are shuffled in a buffer
    (shard order is shuffled per epoch too); packed batches are planned first-fit-decreasing over a
    buffer of ``pack_buffer`` clips. ``stream_resume``: ``skip`` (a resumed run replays the
    epoch's stream and skips the batches already trained on: exact, but the skipped clips are
    decoded again) or ``restart`` (the interrupted epoch starts over: fast, its first part is seen
    twice). Streams need ``max_steps`` (an epoch's batch count is not known in advance).

    ``norm_stats``: ``frontend`` (the front end's ``norm_mean``/``norm_std``: AudioSet's unless
    ``frontend:`` sets them) or ``dataset`` (measured on up to ``norm_stats_clips`` training clips
    at the start of the run, cached in the run directory and saved with the checkpoint; see
    :mod:`audioflex.train.norm_stats`). Use ``dataset`` on data whose level differs from AudioSet's.
    """

    train: DataSpec = field(default_factory=DataSpec)
    valid: DataSpec | None = None
    multilabel: bool | None = None
    max_seconds: float | None = 10.0
    eval_max_seconds: float | None = None
    clip_seconds: float | None = None
    eval_crop: str = "start"
    max_tokens: int = 2048
    max_clips: int | None = None
    batch_size: int = 12
    eval_batch_size: int | None = None
    balanced: bool = False
    epoch_size: int | None = None
    num_workers: int = 0
    drop_last: bool = False
    random_crop_frames: list[int] | None = None
    frontend_device: str = "workers"
    shuffle_buffer: int = 256
    pack_buffer: int = 64
    stream_resume: str = "skip"
    norm_stats: str = "frontend"
    norm_stats_clips: int = 500


@dataclass
class SedConfig:
    """Strong-label (sound event detection) training for models with frame-wise outputs.

    ``frame_weight`` w > 0 (0 = off: clip loss only): clips whose events are known (DESED-style strong labels, see
    ``audioflex.data.targets.is_strong``) get ``(1 - w) * clip BCE + w * frame BCE`` with frame
    targets rasterised at the model's frame hop (HTS-AT: its 32 steps of 0.32 s; ElasticAST with
    ``frame_head: true``: one step per patch column = 16 frame shifts) over the clip's real
    length; weak-only clips get the clip BCE alone — or, with ``weak_frame_loss``, the clip BCE
    mixed with the BCE of the frame logits pooled over time (``weak_pool``), which trains a
    separate frame head from clip labels. ``rule``: ``any`` (a step is active if an event
    overlaps it) or ``half``. Mixup must be off (``augment.mixup_alpha: 0``). Needs BCE.

    Validation of a strong-label run with strongly labelled validation clips scores every clip
    at its full length as ``audioflex evaluate`` does (sliding windows, overlap-add) and logs
    frame and event metrics (:mod:`audioflex.evaluate.selection`: ``frame_mAP``, ``frame_f1``,
    ``event_f1``, ``onset_f1``, clip ``mAP``; ``psds1`` with ``valid_psds`` or when selected).
    ``select`` picks ``best/``: ``onset_f1`` (default: onset-only F1, 200 ms collar, one
    threshold / median filter / minimum duration tuned on the validation clips), ``psds1``
    (needs the ``sed`` extra), ``event_f1``, ``frame_mAP`` or the clip ``mAP``.
    """

    frame_weight: float = 0.0
    weak_frame_loss: bool = False
    weak_pool: str = "mean"
    rule: str = "any"
    select: str = "onset_f1"
    valid_psds: bool = False

    @property
    def enabled(self) -> bool:
        return self.frame_weight > 0


@dataclass
class AugmentConfig:
    """Train-time augmentation. ``time_mask`` is in frames at 10 ms (scaled to each clip's shift).

    ``frame_shifts_ms``: random resolution (ElasticAST: ``[10, 12, ..., 40]``); empty = fixed.
    ``time_shift_ms``: circularly shift each training clip by up to this many ms either way (the
    word of a keyword clip moves inside its window; clip labels only, refused with strong labels).
    ``speed``: ``[low, high]`` speed perturbation: each training clip is played a factor uniform in
    that range faster (tempo and pitch together: other speakers; e.g. ``[0.9, 1.1]``); empty = off.
    ``background_noise``: a folder of noise recordings (``*.wav``, ``*.flac``, ...) mixed into
    training clips with probability ``background_prob`` at an SNR uniform in ``background_snr_db``;
    ``auto`` = the ``_background_noise_`` folder of the training data (Speech Commands layout).
    ``overlay_prob``: strong-label training: a clip gets an excerpt of another strongly labelled
    training clip added with this probability (clip RMS over excerpt RMS uniform in
    ``overlay_snr_db``), and the excerpt's events join its frame and clip targets: the mixing
    augmentation for sound event detection, where mixup has no aligned frame targets.
    """

    freq_mask: int = 0
    time_mask: int = 0
    num_freq_masks: int = 1
    num_time_masks: int = 1
    mixup_alpha: float = 0.0
    mixup_prob: float = 1.0
    gain_db: float = 0.0
    time_shift_ms: float = 0.0
    speed: list[float] = field(default_factory=list)
    background_noise: str | None = None
    background_prob: float = 0.8
    background_snr_db: list[float] = field(default_factory=lambda: [0.0, 20.0])
    frame_shifts_ms: list[float] = field(default_factory=list)
    overlay_prob: float = 0.0
    overlay_snr_db: list[float] = field(default_factory=lambda: [-5.0, 5.0])


@dataclass
class OptimConfig:
    """Optimiser and schedule: linear warm-up, then ``cosine`` (to ``min_lr_ratio * lr``),
    ``step`` (× ``gamma`` every ``step_size`` steps after ``step_start``) or ``constant``."""

    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    step_size: int = 1000
    step_start: int = 0
    gamma: float = 0.5
    grad_clip: float | None = 1.0
    grad_accum: int = 1


@dataclass
class TrainConfig:
    """Everything a training run needs (see the module docstring for the YAML form).

    ``max_steps``: optimiser steps (or ``epochs`` full passes when ``max_steps`` is None).
    ``eval_every``/``save_every``: in optimiser steps (``save_every`` None = ``eval_every``).
    ``amp``: ``auto`` (bf16 on CUDA where supported, off on CPU), ``bf16``, ``fp16`` (CUDA) or
    ``no``. ``loss``: ``auto`` (BCE if multi-label, else CE), ``bce`` or ``ce``. ``resume``: a run
    directory (or its ``last/`` checkpoint) to continue. ``out_dir``: the run directory
    (default ``runs/<model name>``). ``deterministic``: ``torch.use_deterministic_algorithms`` for
    the process, so a seeded run is bit-reproducible (slower on GPU). ``max_minutes``: a wall-clock
    budget for the training steps (validation and checkpoints not counted; kept across resumes):
    the run ends at the first step past it (or at ``max_steps``/``epochs`` if sooner), with the
    learning-rate schedule stretched to the steps the budget allows at the measured speed, and the
    final validation and checkpoints as usual. ``health_check_steps``: after this many steps a
    warning is logged if the training loss is still at the chance level (0: no check).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    frontend: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sed: SedConfig = field(default_factory=SedConfig)
    max_steps: int | None = 1000
    epochs: int | None = None
    max_minutes: float | None = None
    eval_every: int = 500
    save_every: int | None = None
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    loss: str = "auto"
    out_dir: str | None = None
    resume: str | None = None
    progress: bool = True
    tensorboard: bool = True
    keep_best: bool = True
    deterministic: bool = False
    health_check_steps: int = 200

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of the config (written to ``path`` when given)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a dict, recursively, naming unknown keys."""
    if data is None:
        return cls()
    if isinstance(data, str) and "path" in {f.name for f in dataclasses.fields(cls)}:
        data = {"path": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - fields
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {sorted(unknown)}; known keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        tp = _strip_optional(hints[name])
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            optional = tp is not hints[name]
            kwargs[name] = None if value is None and optional else _build(tp, value, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    if value is None:
        return None
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp in (int, bool, str) and not isinstance(value, tp):
        if tp is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if tp is str and isinstance(value, (int, float)):
            return str(value)
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. optim.lr=3e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    # YAML reads 1e-4 as a string; numbers without a dot are read as such
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value) if any(c in value for c in ".eE") else value
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a config dict (in place; returned)."""
    for text in overrides:
        path, value = _parse_override(text)
        node = data
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = nxt
        node[path[-1]] = value
    return data


def load_config(
    path: str | Path | dict[str, Any] | TrainConfig | None = None, overrides: typing.Iterable[str] = ()
) -> TrainConfig:
    """Read a :class:`TrainConfig` from YAML (or a dict/config) and apply ``key=value`` overrides.

    ``path`` may be a run directory (its ``config.yaml`` is read). Raises :class:`ConfigError`
    naming the file and key for unknown keys or wrong types.
    """
    if isinstance(path, TrainConfig):
        data = path.to_dict()
        where = "config"
    elif isinstance(path, dict):
        data = dict(path)
        where = "config"
    elif path is None:
        data, where = {}, "config"
    else:
        p = Path(path)
        if p.is_dir():
            p = p / "config.yaml"
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of config sections")
        where = str(p)
    data = apply_overrides(data, overrides)
    try:
        cfg = _build(TrainConfig, data, "")
        if cfg.model.name is not None:
            check_model_kwargs(cfg.model.name, cfg.model.kwargs, "model.kwargs")
        return cfg
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_model_kwargs(name: str, kwargs: Any, where: str = "model.kwargs") -> None:
    """Raise :class:`ConfigError` unless ``name`` is a registered model and every key of
    ``kwargs`` is an argument of its builder (the error lists the known ones)."""
    from audioflex.models.registry import builder_arguments, get_spec

    try:
        get_spec(name)
    except KeyError as exc:
        raise ConfigError(f"model.name: {exc.args[0]}") from None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: expected a mapping of model arguments, got {type(kwargs).__name__}")
    known = builder_arguments(name)
    unknown = sorted(set(kwargs) - known) if known is not None else []
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for model {name!r}; known keys: {', '.join(sorted(known or ()))}"
        )


__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "DataSpec",
    "ModelConfig",
    "OptimConfig",
    "SedConfig",
    "TrainConfig",
    "apply_overrides",
    "check_model_kwargs",
    "load_config",
]
