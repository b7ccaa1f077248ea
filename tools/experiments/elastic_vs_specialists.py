"""ElasticAST's claim on a native-length corpus: one model vs fixed-length AST specialists, several seeds.

On an ESC-50-layout dataset (e.g. the instrument corpus of tools/corpora/instruments.py) this trains, per seed:

- one ElasticAST (configs/cpu_esc50_elastic_ast.yaml: native lengths, random frame shifts 10-40 ms);
- an AST specialist (configs/cpu_esc50_ast.yaml) for each length L in --lengths and frame shift s in --shifts
  (input ``L`` seconds at ``s`` ms: ``target_length = L * 1000 / s`` frames);

all with the same wall-clock budget (--minutes, ``max_minutes``) and thread count, two runs side by side
(--parallel). Then every checkpoint is evaluated with ``audioflex evaluate`` at each length (and native) and
each frame shift on the held-out fold, beside the log-mel + logistic-regression baseline (``--baseline rest``),
and the table (mean and spread over seeds) is written as Markdown and JSON.

    python tools/experiments/elastic_vs_specialists.py --data /work/data/instruments --out runs/claim

Runs already finished in --out are reused (delete a run directory to train it again).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "audioflex"]


def _run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")


def _jobs(args: argparse.Namespace) -> list[tuple[str, int, list[str]]]:
    """(name, seed, overrides) of every training run."""
    folds = [f"data.train.exclude_folds=[{args.test_fold}]", f"data.valid.folds=[{args.test_fold}]"]
    common = [f"data.train.path={args.data}", f"data.valid.path={args.data}", f"max_minutes={args.minutes}",
              "eval_every=0", *folds]
    jobs = []
    for seed in args.seeds:
        jobs.append(("elastic_ast", seed, [str(REPO / "configs/cpu_esc50_elastic_ast.yaml"), *common]))
        for length in args.lengths:
            for shift in args.shifts:
                frames = round(length * 1000 / shift)
                jobs.append((f"ast_{length:g}s_{shift:g}ms", seed, [
                    str(REPO / "configs/cpu_esc50_ast.yaml"), *common,
                    f"frontend.frame_shift_ms={shift}", f"frontend.target_length={frames}",
                ]))
    return jobs


def train_all(args: argparse.Namespace) -> dict[tuple[str, int], Path]:
    runs: dict[tuple[str, int], Path] = {}
    todo = []
    for name, seed, (config, *sets) in _jobs(args):
        run = args.out / "runs" / f"{name}_seed{seed}"
        runs[(name, seed)] = run
        if (run / "last" / "config.json").is_file() and not (run / ".lock").exists():
            continue
        cmd = [*CLI, "train", config, "--threads", str(args.threads), "--set", f"seed={seed}",
               "--set", f"out_dir={run}"]
        for s in sets:
            cmd += ["--set", s]
        todo.append((cmd, args.out / "logs" / f"{name}_seed{seed}.log"))
    t0 = time.time()
    with ThreadPoolExecutor(args.parallel) as pool:
        for _ in pool.map(lambda job: _run(*job), todo):
            pass
    print(f"trained {len(todo)} run(s) in {(time.time() - t0) / 60:.1f} min", flush=True)
    return runs


def evaluate_all(args: argparse.Namespace, runs: dict[tuple[str, int], Path]) -> list[dict]:
    report = args.out / "evaluate" / "report.json"
    lengths = ",".join(f"{x:g}" for x in args.lengths)
    shifts = ",".join(f"{x:g}" for x in args.shifts)
    cmd = [*CLI, "evaluate", *[str(r / "last") for r in runs.values()], "-d", str(args.data), "--split", "",
           "--folds", str(args.test_fold), "--lengths", f"{lengths},native", "--frame-shifts", shifts,
           "--baseline", "rest", "--threads", str(args.threads * args.parallel), "--out", str(report.parent)]
    _run(cmd, args.out / "logs" / "evaluate.log")
    return json.loads(report.read_text())


def _length(length_s: float | None) -> str:
    return "native" if length_s is None else f"{length_s:g} s"


def _key(length_s: float | None, shift_ms: float) -> str:
    return f"{_length(length_s)} @ {shift_ms:g} ms"


def table(args: argparse.Namespace, runs: dict[tuple[str, int], Path], reports: list[dict]) -> tuple[str, dict]:
    by_ck: dict[str, list[dict]] = {}
    for rep in reports:
        by_ck.setdefault(rep["checkpoint"] or rep["name"], []).extend(rep["rows"])
    metric = reports[0]["metric"]
    cols = [(length, shift) for length in [*args.lengths, None] for shift in args.shifts]
    names = list(dict.fromkeys(name for name, _ in runs))
    cells: dict[str, dict[str, list[float]]] = {}
    for (name, _seed), run in runs.items():
        for row in by_ck.get(str(run / "last"), []):
            cells.setdefault(name, {}).setdefault(_key(row["length_s"], row["frame_shift_ms"]), []).append(row[metric])
    base_rows = [r for rep in reports if not rep["checkpoint"] for r in rep["rows"]]
    keys = [_key(ln, s) for ln, s in cols]
    lines = [f"| model | {' | '.join(keys)} |", "|---" * (len(keys) + 1) + "|"]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        out = []
        for k in keys:
            v = cells.get(name, {}).get(k, [])
            if not v:
                out.append("-")
                continue
            mean = statistics.fmean(v)
            spread = statistics.stdev(v) if len(v) > 1 else math.nan
            summary.setdefault(name, {})[k] = {"mean": mean, "std": spread, "n": len(v)}
            out.append(f"{mean:.3f} ± {spread:.3f}" if len(v) > 1 else f"{mean:.3f}")
        lines.append(f"| {name} | {' | '.join(out)} |")
    base = {_length(r["length_s"]): r[metric] for r in base_rows}
    base_cells = {_key(r["length_s"], r["frame_shift_ms"]): r[metric] for r in base_rows}
    bl = [f"{base_cells[k]:.3f}" if k in base_cells else "-" for k in keys]
    lines.append(f"| log-mel stats + LR (10 ms) | {' | '.join(bl)} |")
    summary["baseline"] = base
    head = (f"{metric} on fold {args.test_fold} of {args.data} (train: the other folds), mean ± std over seeds "
            f"{', '.join(map(str, args.seeds))}; every model trained for {args.minutes:g} min "
            f"({args.threads} thread(s), {args.parallel} side by side).")
    return head + "\n\n" + "\n".join(lines) + "\n", summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="ESC-50-layout dataset (meta/esc50.csv + audio/)")
    p.add_argument("--out", type=Path, default=Path("runs/elastic_vs_specialists"))
    p.add_argument("--test-fold", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lengths", type=float, nargs="+", default=[2.0, 8.0], help="specialist input lengths (s)")
    p.add_argument("--shifts", type=float, nargs="+", default=[10.0, 40.0], help="specialist frame shifts (ms)")
    p.add_argument("--minutes", type=float, default=3.0, help="training budget of every run (max_minutes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parallel", type=int, default=2)
    args = p.parse_args()
    args.out = args.out.resolve()
    args.data = args.data.resolve()
    runs = train_all(args)
    reports = evaluate_all(args, runs)
    text, summary = table(args, runs, reports)
    (args.out / "table.md").write_text(text)
    (args.out / "table.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
