"""Where the parity fixtures live: ``../shared/fixtures`` beside the repository checkout."""

from __future__ import annotations

from pathlib import Path

FIXTURES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
