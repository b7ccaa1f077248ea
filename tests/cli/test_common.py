"""CLI plumbing: a user error becomes one line on stderr, printed as it was raised."""

from __future__ import annotations

import pytest
import typer

from audioflex.cli.common import friendly


def test_user_error_line_keeps_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    """A message with ``[...]`` (a config key's expected form) is printed as text, not read as markup."""

    @friendly
    def command() -> None:
        raise ValueError("augment.overlay_snr_db: expected [low, high] dB with low <= high, got [5, 0]")

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines == ["error: augment.overlay_snr_db: expected [low, high] dB with low <= high, got [5, 0]"]
