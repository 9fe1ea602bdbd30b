"""Funnels paper Table 4 on this machine: train on real MNIST, score Fashion-MNIST as anomalies.

    .venv/bin/python scripts/mnist_anomaly_figures.py --data-dir ../shared/data [--scale 1.0] [--only f_mlp_16]

For each Table 4 row it runs ``funnelrun experiment=table4/mnist_<row>`` with a CPU budget (the
steps and, for the convolutional models, smaller widths given below: the paper's models train
100k+ steps on a GPU), then ``funnelrun-eval ... ood_data=fashion_mnist`` on the best checkpoint,
and prints a Markdown table beside the paper's numbers: test BPD on MNIST, BPD on Fashion-MNIST,
their ratio, the AUROC, the steps, the wall time, and whether the numbers are exact or
importance-weighted estimates of a bound. Learning curves (validation BPD against step) go to
``<out>/learning_curves.png``. ``--scale`` multiplies every step budget.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
#: (row, paper's (MNIST BPD, F-MNIST BPD, ratio), steps, extra overrides): the CPU budget
ROWS = [
    ("f_mlp_4", (2.86, 30.98, 10.83), 3000, []),
    ("f_mlp_16", (2.84, 28.59, 10.07), 3000, []),
    ("vae_4", (7.30, 10.40, 1.42), 3000, []),
    ("vae_16", (6.95, 12.66, 1.82), 3000, []),
    # convolutional flows: a few hundred steps of a narrower net is all a 2-core CPU affords
    ("f_nsf_4", (1.21, 23.42, 19.36), 400,
     ["model.image.hidden_channels=32", "model.image.steps_per_level=2", "model.image.num_res_blocks=1"]),
    ("f_nsf_16", (1.28, 11.32, 8.84), 400,
     ["model.image.hidden_channels=32", "model.image.steps_per_level=2", "model.image.num_res_blocks=1"]),
    ("nsf", (1.10, 4.80, 4.36), 400,
     ["model.image.hidden_channels=32", "model.image.steps_per_level=2", "model.image.num_res_blocks=1"]),
]
COMMON = ["data.batch_size=128", "data.eval_batch_size=500", "eval.is_samples=64", "eval.is_chunk_size=16"]


def _run(cmd: list[str], log: Path) -> None:
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n" + log.read_text()[-3000:])


def _curve(run_dir: Path) -> list[tuple[int, float]]:
    points = []
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get("val/bpd"):
                    points.append((int(row["step"]), float(row["val/bpd"])))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default=None, help="default: figures/mnist_anomaly/<time>")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    out = Path(args.out or f"figures/mnist_anomaly/{time.strftime('%Y-%m-%d_%H-%M-%S')}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    data_dir = str(Path(args.data_dir).resolve())

    results, curves = [], {}
    for row, paper, steps, extra in ROWS:
        if args.only and row not in args.only:
            continue
        steps = max(int(steps * args.scale), 10)
        overrides = [f"experiment=table4/mnist_{row}", f"data.data_dir={data_dir}", *COMMON, *extra,
                     f"trainer.max_steps={steps}", f"trainer.val_check_interval={max(steps // 10, 1)}",
                     "trainer.log_every_n_steps=10"]
        run_dir = out / row
        start = time.perf_counter()
        _run([str(BIN / "funnelrun"), f"hydra.run.dir={run_dir}", *overrides], out / f"{row}.train.log")
        train_wall = time.perf_counter() - start
        metrics = json.loads((run_dir / "metrics.json").read_text())
        ckpt = metrics["best_checkpoint"] or str(run_dir / "checkpoints" / "last.ckpt")
        start = time.perf_counter()
        _run([str(BIN / "funnelrun-eval"), *overrides, f"ckpt_path={ckpt}", "ood_data=fashion_mnist"],
             out / f"{row}.eval.log")
        eval_wall = time.perf_counter() - start
        (evaluation,) = sorted((run_dir / "eval").glob("*/*/eval_metrics.json")) or sorted(
            (run_dir / "eval").rglob("eval_metrics.json"))
        ev = json.loads(evaluation.read_text())
        results.append((row, paper, metrics, ev, train_wall, eval_wall))
        curves[row] = _curve(run_dir)
        print(f"{row}: MNIST {ev['test/bpd']:.3f} F-MNIST {ev['ood/bpd']:.3f} ratio {ev['ood/ratio']:.2f} "
              f"AUROC {ev['ood/auroc']:.3f} ({metrics['steps']} steps, {train_wall / 60:.1f} min)", flush=True)

    lines = [
        "| model | LS | params | steps | train min | MNIST BPD | F-MNIST BPD | ratio | AUROC | kind | paper (MNIST / F-MNIST / ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, paper, m, ev, train_wall, _ in results:
        kind = "exact" if ev["exact"] else f"IS estimate, S={ev['is_samples']} (bound)"
        lines.append(
            f"| {row} | {m['latent_dim']} | {m['num_params']:,} | {m['steps']} | {train_wall / 60:.1f} | "
            f"{ev['test/bpd']:.3f} | {ev['ood/bpd']:.3f} | {ev['ood/ratio']:.2f} | {ev['ood/auroc']:.3f} | {kind} | "
            f"{paper[0]} / {paper[1]} / {paper[2]} |"
        )
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    print("\n" + table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row, points in curves.items():
        if points:
            ax.plot(*zip(*points), marker="o", label=row)
    ax.set_xlabel("step")
    ax.set_ylabel("validation BPD (MNIST)")
    ax.set_yscale("log")
    ax.legend()
    fig.savefig(out / "learning_curves.png", dpi=120, bbox_inches="tight")
    print(f"\ntable, learning curves and runs in {out}")


if __name__ == "__main__":
    main()
