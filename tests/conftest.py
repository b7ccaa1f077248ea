"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixture_paths import FIXTURES_DIR


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The parity fixtures, ``../shared/fixtures`` beside the repository checkout."""
    if not (FIXTURES_DIR / "README.md").is_file():
        pytest.fail(
            f"parity fixtures not found at {FIXTURES_DIR}: clone the shared fixtures so that "
            "'shared/fixtures' sits beside the repository directory (../shared/fixtures)",
            pytrace=False,
        )
    return FIXTURES_DIR
