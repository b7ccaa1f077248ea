"""Model families; importing this package registers every variant."""

from audioflex.models import ast, htsat, passt  # noqa: F401
from audioflex.models.outputs import AudioOutput
from audioflex.models.registry import create_model, list_models

__all__ = ["AudioOutput", "create_model", "list_models"]
