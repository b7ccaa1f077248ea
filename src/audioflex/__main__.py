"""``python -m audioflex`` runs the command-line interface."""

from audioflex.cli import main

main()
