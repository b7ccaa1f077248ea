"""Accuracy of a trained classifier checkpoint in float32 vs bfloat16 autocast (``Pipeline(bf16=True)``)
on the test list of a Speech Commands-layout folder: top-1 accuracy both ways, how many clips change
their top label, and the largest probability difference.

    python tools/experiments/bf16_accuracy.py RUN/best --data DIR [--list testing_list.txt]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from audioflex.inference import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--list", default="testing_list.txt")
    args = ap.parse_args()
    files = [ln.strip() for ln in (args.data / args.list).read_text().splitlines() if ln.strip()]
    pipes = {"fp32": Pipeline.from_checkpoint(args.checkpoint),
             "bf16": Pipeline.from_checkpoint(args.checkpoint, bf16=True)}
    labels = pipes["fp32"].labels
    scores = {k: torch.stack([p.clip_scores(args.data / f) for f in files]) for k, p in pipes.items()}
    truth = torch.tensor([labels.index(f.split("/")[0]) for f in files])
    top = {k: s.argmax(1) for k, s in scores.items()}
    out = {"checkpoint": str(args.checkpoint), "clips": len(files),
           **{f"accuracy_{k}": round(float((t == truth).float().mean()), 4) for k, t in top.items()},
           "top1_changed": int((top["fp32"] != top["bf16"]).sum()),
           "max_prob_diff": float((scores["fp32"] - scores["bf16"]).abs().max())}
    print(json.dumps(out, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
