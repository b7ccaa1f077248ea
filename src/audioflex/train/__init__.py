"""Training: ``train(config) -> TrainResult`` and ``load_config(path, overrides)``.

See :mod:`audioflex.train.config` for the YAML layout and :mod:`audioflex.train.loop` for the
run directory, resume and ``torchrun`` behaviour. Everything :mod:`audioflex.train.config` exports
(its ``__all__``) is exported here too.
"""

from audioflex.train import config as _config
from audioflex.train.config import *  # noqa: F403  (re-exports config.__all__)
from audioflex.train.loop import TrainResult, train

__all__ = [*_config.__all__, "TrainResult", "train"]
