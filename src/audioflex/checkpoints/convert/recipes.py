"""Input normalisation of the original recipes whose checkpoints the converters read.

The AST-family recipes feed ``(fbank - mean) / (2 * std)`` with dataset-specific statistics that
are not stored in the checkpoints; the converters pick them by the head size of the released
models (or from options), so a converted checkpoint gets the input its original was trained on.
Sources: YuanGongND/ast ``egs/*/run*.sh`` and JiuFengSC/ElasticAST ``egs/*/ElasticAST.sh``.
"""

from __future__ import annotations

from audioflex.checkpoints.convert.base import ConversionError

__all__ = ["AST_BY_CLASSES", "AST_NORM", "ELASTICAST_BY_CLASSES", "ELASTICAST_NORM", "recipe_norm"]

# (mean, std) of each original recipe's raw log-fbank; the models get (x - mean) / (2 * std)
AST_NORM = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}
ELASTICAST_NORM = {"audioset": (-4.414, 4.905), "vggsound": (-5.08, 4.453), "voxceleb": (-5.842545, 3.88305)}
AST_BY_CLASSES = {527: "audioset", 50: "esc50", 35: "speechcommands"}
ELASTICAST_BY_CLASSES = {527: "audioset", 309: "vggsound", 1251: "voxceleb"}


def recipe_norm(
    family: str,
    table: dict[str, tuple[float, float]],
    by_classes: dict[int, str],
    num_classes: int,
    *,
    dataset: str | None = None,
    norm_mean: float | None = None,
    norm_std: float | None = None,
) -> tuple[float, float, str]:
    """The input normalisation ``(mean, std, note)`` of the original recipe a checkpoint comes
    from: explicit ``norm_mean`` + ``norm_std``, else ``dataset``, else the dataset whose released
    models have ``num_classes`` outputs, else AudioSet's (with a note saying so)."""
    if (norm_mean is None) != (norm_std is None):
        raise ConversionError("pass both norm_mean= and norm_std= (the recipe's raw log-fbank mean and std)")
    if norm_mean is not None and norm_std is not None:
        return float(norm_mean), float(norm_std), f"input normalisation mean {norm_mean}, std {norm_std} (given)"
    if dataset is not None:
        key = str(dataset).lower().replace("-", "").replace("_", "")
        if key not in table:
            raise ConversionError(f"dataset={dataset!r}: known {family} recipes are {', '.join(table)}")
        mean, std = table[key]
        return mean, std, f"input normalisation of the {family} {key} recipe (mean {mean}, std {std})"
    if num_classes in by_classes:
        key = by_classes[num_classes]
        mean, std = table[key]
        return mean, std, (
            f"{num_classes} outputs: input normalisation of the {family} {key} recipe (mean {mean}, std {std}); "
            "-o dataset=... or norm_mean=/norm_std= to change"
        )
    mean, std = table["audioset"]
    return mean, std, (
        f"{num_classes} outputs match no released {family} recipe: AudioSet's input normalisation "
        f"(mean {mean}, std {std}); pass -o dataset=... or norm_mean=/norm_std= if it was trained otherwise"
    )
