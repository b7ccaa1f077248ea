"""Training: ``train(config) -> TrainResult`` and ``load_config(path, overrides)``.

See :mod:`audioflex.train.config` for the YAML layout and :mod:`audioflex.train.loop` for the
run directory, resume and ``torchrun`` behaviour.
"""

from audioflex.train.config import (
    AugmentConfig,
    ConfigError,
    DataConfig,
    DataSpec,
    ModelConfig,
    OptimConfig,
    SedConfig,
    TrainConfig,
    load_config,
)
from audioflex.train.loop import TrainResult, train

__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "DataSpec",
    "ModelConfig",
    "OptimConfig",
    "SedConfig",
    "TrainConfig",
    "TrainResult",
    "load_config",
    "train",
]
