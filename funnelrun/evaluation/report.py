"""``funnelrun-report DIR [DIR ...]``: the paper-shaped table of a sweep.

Finds every run under the given directories (a ``metrics.json`` beside a ``config.yaml``), groups
runs whose configs differ only in ``seed`` (and in where they log), and prints one row per group —
model x data set, test log-likelihood (nats; BPD where defined) as mean ± 2 standard deviations over
seeds (the funnels paper's error bars), latent size, parameters, and whether the number is exact or
an importance-weighted estimate of a bound model — as Markdown and LaTeX, and writes it as CSV.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

#: config entries that do not make runs different experiments
IGNORED = ("seed", "ckpt_path", "logger.", "trainer.enable_progress_bar", "data.data_dir", "data.num_workers")


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True)}


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def key(self) -> tuple:
        return tuple(sorted((k, v) for k, v in _flatten(self.config).items()
                            if not any(k == i or (i.endswith(".") and k.startswith(i)) for i in IGNORED)))


@dataclass
class Row:
    label: str
    data: str
    mean: float
    spread: float
    unit: str
    kind: str
    latent_dim: int
    num_params: int
    seeds: list[int]

    def cells(self) -> list[str]:
        return [self.label, self.data, f"{self.mean:.3f} ± {self.spread:.3f}", self.unit, self.kind,
                str(self.latent_dim), f"{self.num_params:,}", ",".join(map(str, self.seeds))]


HEADER = ["model", "data", "test (mean ± 2 sd)", "unit", "kind", "latent dim", "parameters", "seeds"]


def find_runs(roots: list[Path]) -> list[Run]:
    runs = []
    for root in roots:
        for metrics_path in sorted(Path(root).rglob("metrics.json")):
            config_path = metrics_path.with_name("config.yaml")
            if config_path.is_file():
                runs.append(Run(metrics_path.parent, yaml.safe_load(config_path.read_text()),
                                json.loads(metrics_path.read_text())))
    return runs


def _row(label: str, runs: list[Run]) -> Row:
    first = runs[0].metrics
    bpd = first.get("test/bpd") is not None
    values = [r.metrics["test/bpd"] if bpd else -r.metrics["test/nll"] for r in runs]
    kind = "exact" if first["exact"] else f"IS estimate of a bound (S={first.get('is_samples')})"
    return Row(
        label=label,
        data=str(runs[0].config.get("data", {}).get("name", "?")),
        mean=statistics.mean(values),
        spread=2 * statistics.stdev(values) if len(values) > 1 else 0.0,
        unit="BPD" if bpd else "log-lik (nats)",
        kind=kind,
        latent_dim=first["latent_dim"],
        num_params=first["num_params"],
        seeds=sorted(r.config.get("seed") for r in runs),
    )


def build_rows(runs: list[Run]) -> list[Row]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    names = [g[0].config.get("name", g[0].path.name) for g in groups.values()]
    rows = []
    for (key, group), name in zip(groups.items(), names):
        label = name
        if names.count(name) > 1:  # same model and data, other settings: name what differs
            others = [dict(k) for k, g in groups.items() if g[0].config.get("name") == name and k != key]
            mine = dict(key)
            differing = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
            label += " (" + ", ".join(f"{k}={json.loads(mine[k])}" for k in differing) + ")"
        rows.append(_row(label, group))
    return sorted(rows, key=lambda r: (r.data, r.label))


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def latex(rows: list[Row]) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%")

    lines = [r"\begin{tabular}{" + "l" * len(HEADER) + "}", r"\toprule",
             " & ".join(esc(h) for h in HEADER) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in r.cells()) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="funnelrun-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument("--csv", type=Path, default=None, help="CSV path (default: <first dir>/report.csv)")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        sys.exit(f"funnelrun-report: error: not a directory: {', '.join(map(str, missing))}")
    runs = find_runs(args.dirs)
    if not runs:
        sys.exit(f"funnelrun-report: error: no finished runs (metrics.json + config.yaml) under "
                 f"{', '.join(map(str, args.dirs))}")
    rows = build_rows(runs)
    print(markdown(rows), "", latex(rows), sep="\n")
    out = args.csv or args.dirs[0] / "report.csv"
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(r.cells() for r in rows)
    print(f"\n{len(runs)} runs in {len(rows)} rows; CSV: {out}")


if __name__ == "__main__":
    main()
