"""Model families; importing this package registers every variant.

Every family declares a :class:`~audioflex.models.contract.ModelContract` (``model.contract``):
what the code above ``models/`` may know about it.
"""

from audioflex.models import ast, htsat, passt  # noqa: F401
from audioflex.models.contract import ModelContract, contract_of
from audioflex.models.outputs import AudioOutput
from audioflex.models.registry import create_model, list_models

__all__ = ["AudioOutput", "ModelContract", "contract_of", "create_model", "list_models"]
