"""``funnelrun-report DIR [DIR ...] [--paper]``: the paper-shaped table of a sweep.

Finds every run under the given directories (a ``config.yaml``, with a ``metrics.json`` once it has
finished), groups runs whose configs differ only in ``seed`` (and in where they log), and prints one
row per group — model x data set, test log-likelihood (nats; BPD where defined) as mean ± 2 standard
deviations over seeds (the funnels paper's error bars; one seed: its value and no spread), latent
size, parameters, and whether the number is exact or an importance-weighted estimate of a bound
model — as Markdown and LaTeX, and writes it as CSV. Failed runs are listed as such, and never
averaged in: a run directory with a ``config.yaml`` and no ``metrics.json`` (failed, or still
running), one with a failure marker (``failure.json``, written by sweeps), or one whose test metric
is NaN. W&B's files and an extended run's ``history/step<N>/`` are not runs.

``--paper`` puts each measured row beside the funnels paper's published number for Tables 1, 2 and 4
(``paper_results.yaml`` in this package: one entry per table cell, found by the run's name, which
every ``experiment=table*/...`` file sets to its own path): the measured mean ± 2 sd, the paper's
value and error bar, their difference and whether the error bar covers it (Tables 2 and 4 print no
error bars). Also VFlow §5's checkerboard pair (``experiment=vflow/...``) and Das et al. 2019's
Table 1 RealNVP rows (``experiment=drf/...``, BPD, no error bars). Table 4's OOD numbers come from
the newest ``funnelrun-eval ... ood_data=fashion_mnist`` in ``<run>/eval/``. CSV: ``<first dir>/paper_report.csv``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional, TypeGuard

import yaml

#: config entries that do not make runs different experiments
IGNORED = ("seed", "ckpt_path", "logger.", "trainer.enable_progress_bar", "data.data_dir", "data.num_workers")
#: failure markers a run directory may hold (``failure.json``: sweeps, funnelrun/hydra_callbacks.py)
FAILURE_MARKERS = ("failure.json", "failed.json")
PAPER_FILE = "paper_results.yaml"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True)}


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value)


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    #: why the run has no result (no metrics.json, a failure marker, NaN metrics); None: finished
    failure: Optional[str] = None
    #: the newest funnelrun-eval metrics of each OOD set, by ood_data
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def key(self) -> tuple:
        return tuple(sorted((k, v) for k, v in _flatten(self.config).items()
                            if not any(k == i or (i.endswith(".") and k.startswith(i)) for i in IGNORED)))

    def value(self, metric: str) -> Optional[float]:
        """A metric of this run (see ``paper_results.yaml``): metrics.json's, derived ones
        (``test/loglik``, ``test/loglik_elbo``, ``test/bpd_elbo``), or funnelrun-eval's ``ood/*``."""
        m = self.metrics
        if metric == "test/loglik":
            return None if m.get("test/nll") is None else -m["test/nll"]
        if metric == "test/loglik_elbo":
            return None if m.get("test/nll_elbo") is None else -m["test/nll_elbo"]
        if metric == "test/bpd_elbo" and m.get("test/bpd") is not None and m.get("test/nll_elbo") is not None:
            return m["test/nll_elbo"] / (m["data_dim"] * math.log(2))  # BPD = nll / (D ln 2)
        return m.get(metric)


def _read_json(path: Path) -> Optional[dict[str, Any]]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _json_problem(path: Path) -> str:
    """Why ``path`` is not a JSON object (truncated, not JSON, unreadable)."""
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    except ValueError as exc:
        return f"not complete JSON: {exc}"
    return f"a JSON {type(value).__name__}, not an object"


def _failure(run_dir: Path, metrics: Optional[dict[str, Any]]) -> Optional[str]:
    for marker in FAILURE_MARKERS:
        if (run_dir / marker).is_file():
            record = _read_json(run_dir / marker) or {}
            return f"failed ({marker}: {' '.join(str(record.get('error', 'no message')).split())[:200]})"
    if metrics is None:
        metrics_path = run_dir / "metrics.json"
        if metrics_path.is_file():
            return f"unreadable {metrics_path} ({_json_problem(metrics_path)})"
        return "failed or unfinished (no metrics.json)"
    if metrics.get("warnings"):  # finite but implausible (funnelrun.pipelines.train.implausible): diverged
        return f"implausible ({' '.join(str(metrics['warnings'][0]).split())[:200]})"
    bad = [k for k in ("test/nll", "test/bpd") if k in metrics and metrics[k] is not None and not _finite(metrics[k])]
    if bad or metrics.get("test/nll") is None:
        return f"failed ({', '.join(bad) or 'test/nll'} {'is not finite' if bad else 'missing'})"
    return None


def _evals(run_dir: Path) -> dict[str, dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for path in sorted((run_dir / "eval").rglob("eval_metrics.json")):  # eval/<time>/<ns>/: oldest first
        record = _read_json(path)
        if record is not None:
            newest[str(record.get("ood_data"))] = record
    return newest


def find_runs(roots: list[Path]) -> list[Run]:
    """Every run directory under ``roots``: finished, failed or unfinished (see the module docstring)."""
    dirs: set[Path] = set()
    for root in roots:
        for marker in ("config.yaml", "metrics.json", *FAILURE_MARKERS):
            dirs.update(p.parent for p in Path(root).rglob(marker))
    runs = []
    for run_dir in sorted(dirs):
        if "wandb" in run_dir.parts:  # W&B keeps a config.yaml of its own in every run's files
            continue
        if run_dir.parent.name == "history" and (run_dir.parent.parent / "config.yaml").is_file():
            continue  # an extended run's earlier results (<run>/history/step<N>/), not another run
        config_path, metrics_path = run_dir / "config.yaml", run_dir / "metrics.json"
        try:
            config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
        except (OSError, yaml.YAMLError):
            config = None
        if not isinstance(config, dict) or (config and not {"model", "data"} <= set(config)):
            config = {}  # not a funnelrun config
        if not config and not any((run_dir / m).is_file() for m in FAILURE_MARKERS):
            continue  # neither a run's config nor a failure marker: not a run directory
        metrics = _read_json(metrics_path) if metrics_path.is_file() else None
        runs.append(Run(run_dir, config, metrics or {}, _failure(run_dir, metrics), _evals(run_dir)))
    return runs


@dataclass
class Row:
    label: str
    data: str
    values: list[float]
    unit: str
    kind: str
    latent_dim: Optional[int]
    num_params: Optional[int]
    seeds: list[Any]
    failed_seeds: list[Any]

    @property
    def result(self) -> str:
        return measured(self.values)

    def cells(self) -> list[str]:
        seeds = ",".join(map(str, self.seeds))
        if self.failed_seeds:
            seeds += (" " if seeds else "") + f"(failed: {','.join(map(str, self.failed_seeds))})"
        return [self.label, self.data, self.result, self.unit, self.kind,
                "?" if self.latent_dim is None else str(self.latent_dim),
                "?" if self.num_params is None else f"{self.num_params:,}", seeds]


HEADER = ["model", "data", "test (mean ± 2 sd)", "unit", "kind", "latent dim", "parameters", "seeds"]


def measured(values: list[float]) -> str:
    """mean ± 2 sd over seeds; one seed: its value (no spread); none: failed."""
    if not values:
        return "failed"
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.mean(values):.3f} ± {2 * statistics.stdev(values):.3f}"


def _row(label: str, runs: list[Run]) -> Row:
    done = [r for r in runs if r.failure is None]
    failed = [r for r in runs if r.failure is not None]
    first = done[0].metrics if done else {}
    bpd = first.get("test/bpd") is not None
    values = [r.metrics["test/bpd"] if bpd else -r.metrics["test/nll"] for r in done]
    if not done:
        kind = "-"
    elif first.get("exact"):
        kind = "exact"
    else:
        kind = f"IS estimate of a bound (S={first.get('is_samples')})"
    return Row(
        label=label,
        data=str(runs[0].config.get("data", {}).get("name", "?")),
        values=values,
        unit=("BPD" if bpd else "log-lik (nats)") if done else "-",
        kind=kind,
        latent_dim=first.get("latent_dim"),
        num_params=first.get("num_params"),
        seeds=sorted(r.config.get("seed") for r in done),
        failed_seeds=sorted(str(r.config.get("seed", "?")) for r in failed),
    )


def _groups(runs: list[Run]) -> dict[tuple, list[Run]]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.config:
            groups.setdefault(run.key, []).append(run)
    return groups


def _labels(groups: dict[tuple, list[Run]]) -> dict[tuple, str]:
    names = {key: group[0].name for key, group in groups.items()}
    labels = {}
    for key, name in names.items():
        label = name
        if list(names.values()).count(name) > 1:  # same model and data, other settings: name what differs
            others = [dict(k) for k, n in names.items() if n == name and k != key]
            mine = dict(key)
            differing = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
            label += " (" + ", ".join(f"{k}={json.loads(mine[k])}" for k in differing) + ")"
        labels[key] = label
    return labels


def build_rows(runs: list[Run]) -> list[Row]:
    groups = _groups(runs)
    labels = _labels(groups)
    rows = [_row(labels[key], group) for key, group in groups.items()]
    return sorted(rows, key=lambda r: (r.data, r.label))


def failed_lines(runs: list[Run]) -> list[str]:
    return [f"- {r.path}: {r.name if r.config else '(no config.yaml)'}: {r.failure}" for r in runs if r.failure]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def latex(header: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%")

    lines = [r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule",
             " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


# -- the paper's numbers -----------------------------------------------------------------------
def paper_entries() -> list[dict[str, Any]]:
    """The funnels paper's published numbers (``paper_results.yaml``), one entry per table cell."""
    text = resources.files("funnelrun.evaluation").joinpath(PAPER_FILE).read_text()
    return yaml.safe_load(text)["entries"]


PAPER_HEADER = ["table", "row", "column", "metric", "measured (mean ± 2 sd)", "seeds", "paper", "difference",
                "within the paper's error bar", "run"]


def _paper_value(run: Run, entry: dict[str, Any]) -> Optional[float]:
    metric = entry["metric"]
    if metric.startswith("ood/") or (entry.get("ood_data") and metric.startswith("test/bpd")):
        record = run.evals.get(str(entry.get("ood_data")))
        if record is not None and _finite(record.get(metric)):
            return float(record[metric])
        if metric.startswith("ood/"):
            return None
    value = run.value(metric)
    return float(value) if _finite(value) else None


def paper_rows(runs: list[Run]) -> tuple[list[list[str]], int]:
    """One row per paper cell with a measured run (the groups of runs named by its experiment);
    also returns how many of the paper's cells have no run."""
    groups = _groups(runs)
    labels = _labels(groups)
    by_name: dict[str, list[tuple[tuple, list[Run]]]] = {}
    for key, group in groups.items():
        by_name.setdefault(group[0].name, []).append((key, group))
    rows, missing = [], 0
    for entry in paper_entries():
        matches = by_name.get(entry["experiment"], [])
        if not matches:
            missing += 1
            continue
        for key, group in matches:
            done = [r for r in group if r.failure is None]
            values = [v for v in (_paper_value(r, entry) for r in done) if v is not None]
            paper, error = entry["value"], entry.get("error")
            paper_text = f"{paper}" + (f" ± {error}" if error is not None else "")
            if values:
                difference = statistics.mean(values) - paper
                diff_text = f"{difference:+.3f}"
                covered = "no error bar" if error is None else ("yes" if abs(difference) <= error else "no")
            else:
                diff_text, covered = "-", "-"
            seeds = ",".join(str(r.config.get("seed")) for r in done if _paper_value(r, entry) is not None)
            failed = [r for r in group if r.failure is not None]
            if failed:
                seeds += (" " if seeds else "") + f"(failed: {len(failed)})"
            result = measured(values) if values or failed or not done else "not measured"
            rows.append([str(entry["table"]), str(entry["row"]), str(entry["column"]), entry["metric"], result,
                         seeds, paper_text, diff_text, covered, labels[key]])
    return rows, missing


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="funnelrun-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument("--csv", type=Path, default=None,
                        help="CSV path (default: <first dir>/report.csv, with --paper <first dir>/paper_report.csv)")
    parser.add_argument("--paper", action="store_true",
                        help="each measured row beside the published number (funnels Tables 1, 2, 4; VFlow §5; "
                             "Das et al. Table 1)")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not d.is_dir()]
    if missing:
        sys.exit(f"funnelrun-report: error: not a directory: {', '.join(map(str, missing))}")
    runs = find_runs(args.dirs)
    if not runs:
        sys.exit(f"funnelrun-report: error: no runs (a config.yaml, and metrics.json once finished) under "
                 f"{', '.join(map(str, args.dirs))}")
    if args.paper:
        header = PAPER_HEADER
        table_rows, not_run = paper_rows(runs)
        if not table_rows:
            sys.exit("funnelrun-report: error: no run under these directories is one of the paper's rows: run an "
                     "experiment=table1/..., table2/... or table4/... file (a run's name must be the file's path)")
        out = args.csv or args.dirs[0] / "paper_report.csv"
        print(markdown(header, table_rows))
        print(f"\n{len(table_rows)} of the paper's cells measured, {not_run} without a run")
    else:
        header = HEADER
        table_rows = [r.cells() for r in build_rows(runs)]
        out = args.csv or args.dirs[0] / "report.csv"
        print(markdown(header, table_rows), "", latex(header, table_rows), sep="\n")
    failed = failed_lines(runs)
    if failed:
        print(f"\nfailed runs ({len(failed)}):", *failed, sep="\n")
    try:
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(table_rows)
    except OSError as exc:
        print(f"funnelrun-report: error: could not write the CSV {out}: {exc.strerror or exc}; the table above is "
              f"complete: pass --csv <a writable path> for the CSV", file=sys.stderr)
        sys.exit(2)
    finished = sum(r.failure is None for r in runs)
    print(f"\n{finished} finished runs, {len(failed)} failed; CSV: {out}")


if __name__ == "__main__":
    main()
