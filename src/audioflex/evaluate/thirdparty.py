"""The optional third-party scorers, imported quietly and with an install hint when missing.

``sed_eval`` (and ``sed_scores_eval``, which imports it) pulls in ``dcase_util``, whose import
calls the deprecated ``pkg_resources`` and warns about it on every run; that one warning is
filtered (by message and category, at import only), nothing else.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

__all__ = ["import_psds_eval", "import_sed_eval", "import_sed_scores_eval"]

_INSTALL = "pip install 'audioflex[sed]'"


def _quiet_import(name: str, what: str) -> ModuleType:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
            warnings.filterwarnings("ignore", message=r".*pkg_resources.*", category=DeprecationWarning)
            return importlib.import_module(name)
    except ImportError as e:
        hint = " (dcase_util needs pkg_resources: pip install 'setuptools<81')" if "pkg_resources" in str(e) else ""
        raise ImportError(f"{what} need the {name} package{hint}: {_INSTALL} ({e})") from e


def import_sed_eval() -> ModuleType:
    """``sed_eval`` (event- and segment-based metrics)."""
    return _quiet_import("sed_eval", "event- and segment-based metrics")


def import_sed_scores_eval() -> ModuleType:
    """``sed_scores_eval`` (threshold-independent PSDS from frame scores, score files)."""
    import_sed_eval()
    return _quiet_import("sed_scores_eval", "PSDS and score files")


def import_psds_eval() -> ModuleType:
    """``psds_eval`` (PSDS over operating points; the cross-check of ``sed_scores_eval``)."""
    return _quiet_import("psds_eval", "operating-point PSDS")
