"""``audioflex models`` and ``audioflex convert``: what can be built, and foreign checkpoints
turned into audioflex ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from audioflex.cli.common import out, parse_options

__all__ = ["convert", "models"]


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered models with their parameter counts."""
    import torch

    from audioflex.models.registry import create_model, get_spec, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name)
        n = sum(p.numel() for p in model.parameters())
        fe = get_spec(name).frontend
        rows.append(
            {
                "name": name,
                "parameters": n,
                "frontend": fe().kind if fe else None,
                "description": get_spec(name).description,
            }
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="audioflex models")
    for col in ("model", "params", "front end", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"{r['parameters'] / 1e6:.1f} M", r["frontend"] or "-", r["description"])
    out.print(table)


def convert(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="Source format (see --list)."),
    src: Path = typer.Argument(..., help="Foreign checkpoint file or folder."),
    dst: Path = typer.Argument(..., metavar="OUT", help="Output audioflex checkpoint directory."),
    option: list[str] = typer.Option([], "--option", "-o", help="Converter option key=value (e.g. num_heads=12)."),
    labels: Optional[str] = typer.Option(
        None,
        help="Class names: a file (one name per line, or an index,mid,display_name CSV) or a shipped set: "
        "audioset, speechcommands, esc50. Default: the source's names; AudioSet's for 527 outputs.",
    ),
) -> None:
    """Convert a foreign checkpoint (hf-ast, ast, elasticast, ast-to-elastic, htsat, passt)."""
    from audioflex.checkpoints import load_state_checked, save_checkpoint
    from audioflex.checkpoints.convert import get_converter
    from audioflex.checkpoints.convert.labels import choose_labels
    from audioflex.models.contract import contract_of
    from audioflex.models.registry import create_model

    conv = get_converter(fmt).convert(src, **parse_options(option))
    model = create_model(conv.model_name, **conv.model_args)
    strict = not any("strict=False" in n for n in conv.notes)
    load_state_checked(model, conv.state_dict, strict=strict, source=str(src))
    names, label_notes = choose_labels(labels, conv.labels, contract_of(model).num_classes)
    save_checkpoint(dst, model, frontend=conv.frontend, labels=names)
    n = sum(p.numel() for p in model.parameters())
    out.print(f"wrote {dst} ({conv.model_name}, {n / 1e6:.2f} M parameters)")
    for note in conv.notes + label_notes:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
