"""Issue 19 figures: what the image data path costs, on synthetic sets written in the real formats.

    .venv/bin/python scripts/bench_data.py [--sections throughput memory celeba] [--device cpu|cuda]
        [--root DIR] [--cifar 50000] [--imagenet32 100000] [--imagenet64 50000] [--batches 60]
        [--memory-sizes 25000 50000 100000 200000] [--baseline-size 50000] [--celeba 20000]
        [--workers 0] [--out results.json] [--keep]

Every measurement runs in a fresh process (``--worker ...``, so that nothing is mapped or cached in
Python before it starts) on one torch thread, and prints the machine's 1-minute load average beside
its figure (the machine may be shared). Synthetic data is written under ``--root`` (default: a
temporary directory) and deleted afterwards unless ``--keep``.

- ``throughput``: CIFAR-10 pickles, ImageNet 32 and ImageNet 64 npz files. A first launch builds the
  prepared-data cache (``build_data`` timed: the cache build), a second launch maps it (timed apart);
  then examples/s that the training loader delivers: uint8 batches from the memory-mapped cache,
  moved to ``--device`` (pinned memory on CUDA) and dequantized there (noise drawn on the device),
  over ``--batches`` batches of the config's batch size after 5 warm-up batches, with
  ``--workers`` DataLoader workers.
- ``memory``: ImageNet 64 npz sets of ``--memory-sizes`` training images. For each size, one epoch of
  ``funnelrun``'s training stack (the config's data module and ``trainer_kwargs``, trainer=cpu and
  trainer=ddp_cpu, a Lightning DensityEstimator whose model is the data's preprocessing and one
  ActNorm, so the data path dominates) runs, and at the end of the epoch every rank (after a barrier,
  so all still map the cache) reads ``/proc/self/smaps_rollup``: Pss (its share of every page it
  maps: a page mapped by k processes counts 1/k in each), Pss_Anon (its private heap), Pss_File
  (file-backed: libraries and the mapped cache). The node's memory of a run is the sum of Pss over its
  ranks, which counts a shared page once. ``--baseline-size`` repeats one size with ``data.cache=false``
  (every rank reads the set into its own memory: the behaviour before the cache).
- ``celeba``: ``--celeba`` 178x218 JPEGs with a partition file. Data time (``build_data`` and the
  first dequantized training batch) of a first launch, which decodes every JPEG into the cache, and
  of a second launch, which stats the files and maps the cache; the second as a fraction of the first.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

#: data option, its batch size (funnels paper Table 7)
FORMATS = {
    "cifar10": ("cifar10_8bit", 512),
    "imagenet32": ("imagenet32_8bit", 512),
    "imagenet64": ("imagenet64_8bit", 256),
    "celeba": ("celeba64", 256),
}
#: test images written beside each training set
TEST_IMAGES = 5000
#: held-out validation images (sets without an official validation split), at most a tenth of the set
VAL_SIZE = 2000


def load() -> float:
    return os.getloadavg()[0]


# -- synthetic sets -----------------------------------------------------------------------------
def write_set(name: str, root: Path, n_train: int) -> float:
    """Write ``n_train`` training images (and test images) of set ``name`` under ``root``; seconds taken."""
    from funnelrun.data.synthetic import write_celeba, write_cifar10, write_imagenet

    start = time.perf_counter()
    if name == "cifar10":
        write_cifar10(root, n_train, TEST_IMAGES)
    elif name.startswith("imagenet"):
        write_imagenet(root, int(name.removeprefix("imagenet")), n_train, TEST_IMAGES)
    else:  # CelebA's proportions: about 80 % train, 10 % validation, 10 % test
        n_eval = max(n_train // 8, 1)
        write_celeba(root, [0] * n_train + [1] * n_eval + [2] * n_eval)
    return time.perf_counter() - start


def overrides(name: str, root: Path, n_train: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The config of set ``name`` written with ``n_train`` training images (a smaller batch where the
    set is smaller than one)."""
    option, batch = FORMATS[name]
    val_size = 0 if name == "celeba" else min(VAL_SIZE, n_train // 10)
    val = [] if name == "celeba" else [f"data.val_size={val_size}"]
    return [f"data={option}", f"data.data_dir={root}", f"data.batch_size={min(batch, n_train - val_size)}", *val,
            *extra]


# -- workers: each in its own process ------------------------------------------------------------
def worker_launch(args: argparse.Namespace) -> dict[str, Any]:
    """Data time of a launch (build_data + first dequantized training batch), then examples/s."""
    import torch

    from funnelrun.builder import build_data
    from funnelrun.config import compose_config

    torch.set_num_threads(1)
    device = torch.device(args.device)
    cfg = compose_config(args.overrides)
    start = time.perf_counter()
    dm = build_data(cfg)
    built = time.perf_counter()
    dm.pin_memory = device.type == "cuda"
    loader = dm.train_dataloader()
    batches = (batch for _ in iter(int, 1) for batch in loader)  # epoch after epoch

    def deliver() -> Any:
        return dm.dequantize_training_batch(next(batches).to(device))

    x = deliver()
    if device.type == "cuda":
        torch.cuda.synchronize()
    first = time.perf_counter()
    result: dict[str, Any] = {"build_data_s": built - start, "data_s": first - start, "batch": list(x.shape),
                              "train_images": len(dm.train), "load_before": args.load_before}
    if args.batches:
        for _ in range(5):
            deliver()
        rates = []
        for _ in range(3):  # three timed windows: the median is robust to a neighbour's burst
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            n = 0
            for _ in range(max(args.batches // 3, 1)):
                n += len(deliver())
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates.append(n / (time.perf_counter() - t))
        result["examples_per_s"] = statistics.median(rates)
        result["examples_per_s_windows"] = rates
    result["load_after"] = load()
    return result


def smaps_rollup() -> dict[str, int]:
    """/proc/self/smaps_rollup in kB."""
    values = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        values[key] = int(value.split()[0])
    return values


def worker_memory(args: argparse.Namespace) -> Optional[dict[str, Any]]:
    """One epoch of the training stack; every rank writes its smaps_rollup at the end (trainer=ddp_cpu:
    Lightning starts the second rank by running this same command again)."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import Callback

    from funnelrun.builder import build_data
    from funnelrun.config import compose_config
    from funnelrun.models.flow import Flow
    from funnelrun.training.module import DensityEstimator
    from funnelrun.training.trainer import trainer_kwargs
    from funnelrun.transforms.actnorm import ActNorm

    torch.set_num_threads(1)
    cfg = compose_config(args.overrides)
    dm = build_data(cfg)
    steps = len(dm.train) // dm.batch_size

    class Probe(Callback):
        def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            trainer.strategy.barrier()  # every rank still maps the cache while each one reads its share
            entry = {"rank": trainer.global_rank, "world": trainer.world_size, "steps": trainer.global_step,
                     "smaps_kB": smaps_rollup(), "train_images": len(dm.train), "load": load()}
            Path(args.result).with_suffix(f".rank{trainer.global_rank}.json").write_text(json.dumps(entry))
            trainer.strategy.barrier()

    model = Flow([*dm.preprocessing(), ActNorm(dm.data_shape[0])], dm.data_shape)
    module = DensityEstimator(model, lr=1e-3, bits=dm.bits)
    kwargs = {**trainer_kwargs(cfg), "max_steps": steps, "limit_val_batches": 0, "enable_progress_bar": False}
    trainer = pl.Trainer(**kwargs, logger=False, enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[Probe()], default_root_dir=str(Path(args.result).parent))
    trainer.fit(module, datamodule=dm)
    return None


def run_worker(kind: str, result: Path, overrides_: list[str], **options: Any) -> dict[str, Any]:
    """Run ``--worker kind`` in a fresh process; its JSON result (and wall time)."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--result", str(result),
               "--load-before", str(load())]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    command += ["--", *overrides_]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-4000:]}")
    if kind == "memory":
        ranks = sorted(result.parent.glob(f"{result.stem}.rank*.json"))
        return {"ranks": [json.loads(p.read_text()) for p in ranks], "wall_s": wall}
    return {**json.loads(result.read_text()), "wall_s": wall, "stderr": proc.stderr[-2000:]}


# -- sections -----------------------------------------------------------------------------------
def section_throughput(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    sizes = {"cifar10": args.cifar, "imagenet32": args.imagenet32, "imagenet64": args.imagenet64}
    rows = []
    for name, n in sizes.items():
        if not n:
            continue
        data_dir = root / f"throughput-{name}"
        write_s = write_set(name, data_dir, n)
        first = run_worker("launch", root / f"{name}-first.json", overrides(name, data_dir, n), device=args.device,
                           batches=0)
        later = run_worker("launch", root / f"{name}-later.json",
                           overrides(name, data_dir, n, (f"data.num_workers={args.workers}",)),
                           device=args.device, batches=args.batches)
        row = {"set": name, "train_images": later["train_images"], "write_s": write_s,
               "first_launch_data_s": first["data_s"], "later_launch_data_s": later["data_s"],
               "examples_per_s": later["examples_per_s"], "windows": later["examples_per_s_windows"],
               "batch": later["batch"], "load": [later["load_before"], later["load_after"]]}
        rows.append(row)
        print(f"{name}: {row['train_images']:,} training images (batch {row['batch'][0]}): first launch "
              f"{row['first_launch_data_s']:.2f} s data time (cache build), later {row['later_launch_data_s']:.3f} s; "
              f"{row['examples_per_s']:,.0f} examples/s on {args.device} ({args.workers} workers; windows "
              f"{', '.join(f'{r:,.0f}' for r in row['windows'])}); load {row['load'][0]:.2f} -> {row['load'][1]:.2f}",
              flush=True)
        if not args.keep:
            shutil.rmtree(data_dir)
    results["throughput"] = rows


def _memory_row(size: int, ranks: int, cache: bool, run: dict[str, Any]) -> dict[str, Any]:
    per_rank = [r["smaps_kB"] for r in run["ranks"]]
    assert len(per_rank) == ranks, run
    mb = 1024
    return {
        "train_images": run["ranks"][0]["train_images"], "size": size, "ranks": ranks, "cache": cache,
        "steps": run["ranks"][0]["steps"], "wall_s": run["wall_s"],
        "node_pss_MB": sum(r["Pss"] for r in per_rank) / mb,
        "rank_pss_MB": [r["Pss"] / mb for r in per_rank],
        "rank_anon_MB": [r["Pss_Anon"] / mb for r in per_rank],
        "rank_file_MB": [r["Pss_File"] / mb for r in per_rank],
        "rank_rss_MB": [r["Rss"] / mb for r in per_rank],
        "load": max(r["load"] for r in run["ranks"]),
    }


def section_memory(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    rows = []
    print("\n| train images | cache | ranks | node memory (sum of Pss) | per rank: Pss / anonymous / file-backed "
          "| RSS per rank | 2 ranks / 1 rank | wall | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    plans = [(size, True) for size in args.memory_sizes] + ([(args.baseline_size, False)] if args.baseline_size else [])
    for k, (size, cache) in enumerate(plans):
        data_dir = root / f"memory-{size}"
        if not data_dir.exists():
            write_set("imagenet64", data_dir, size)
            if cache:  # the first launch builds the cache (timed by the throughput section), outside the runs
                run_worker("launch", root / f"memory-{size}-build.json", overrides("imagenet64", data_dir, size),
                           device="cpu", batches=0)
        one_rank = None
        for ranks, trainer in ((1, "cpu"), (2, "ddp_cpu")):
            extra = (f"trainer={trainer}", f"data.cache={str(cache).lower()}")
            run = run_worker("memory", root / f"memory-{size}-{cache}-{ranks}.json",
                             overrides("imagenet64", data_dir, size, extra))
            row = _memory_row(size, ranks, cache, run)
            one_rank = row["node_pss_MB"] if ranks == 1 else one_rank
            row["ratio_to_one_rank"] = row["node_pss_MB"] / one_rank
            rows.append(row)
            per = "; ".join(f"{p:,.0f} / {a:,.0f} / {f:,.0f} MB" for p, a, f in
                            zip(row["rank_pss_MB"], row["rank_anon_MB"], row["rank_file_MB"]))
            print(f"| {row['train_images']:,} | {'mapped' if cache else 'in memory'} | {ranks} | "
                  f"{row['node_pss_MB']:,.0f} MB | {per} | {', '.join(f'{r:,.0f}' for r in row['rank_rss_MB'])} MB | "
                  f"{row['ratio_to_one_rank']:.2f} | {row['wall_s']:.0f} s | {row['load']:.2f} |", flush=True)
        if not args.keep and all(later != size for later, _ in plans[k + 1:]):
            shutil.rmtree(data_dir)
    results["memory"] = rows


def section_celeba(args: argparse.Namespace, root: Path, results: dict[str, Any]) -> None:
    data_dir = root / "celeba"
    write_s = write_set("celeba", data_dir, args.celeba)
    launches = [run_worker("launch", root / f"celeba-{k}.json", overrides("celeba", data_dir, args.celeba), device=args.device,
                           batches=0) for k in range(3)]
    first, later = launches[0], launches[1:]
    ratio = max(r["data_s"] for r in later) / first["data_s"]
    total = sum(1 for _ in (data_dir / "celeba" / "img_align_celeba").iterdir())
    results["celeba"] = {"jpegs": total, "write_s": write_s, "first_data_s": first["data_s"],
                         "later_data_s": [r["data_s"] for r in later], "later_over_first": ratio,
                         "process_wall_s": [r["wall_s"] for r in launches],
                         "load": [[r["load_before"], r["load_after"]] for r in launches]}
    later_s = ", ".join(f"{r['data_s']:.3f} s" for r in later)
    walls = ", ".join(f"{r['wall_s']:.1f} s" for r in launches)
    print(f"\nCelebA format, {total:,} JPEGs (written in {write_s:.0f} s): first launch data time "
          f"{first['data_s']:.2f} s (decode into the cache; load {first['load_before']:.2f} -> {first['load_after']:.2f}), "
          f"later launches {later_s} (load {later[-1]['load_before']:.2f} -> {later[-1]['load_after']:.2f}): "
          f"{100 * ratio:.2f} % of the first; whole processes {walls} (imports included)", flush=True)
    if not args.keep:
        shutil.rmtree(data_dir)


SECTIONS = {"throughput": section_throughput, "memory": section_memory, "celeba": section_celeba}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", type=Path, help="where the synthetic sets are written (default: a temporary dir)")
    parser.add_argument("--cifar", type=int, default=50000)
    parser.add_argument("--imagenet32", type=int, default=100000)
    parser.add_argument("--imagenet64", type=int, default=50000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[25000, 50000, 100000, 200000])
    parser.add_argument("--baseline-size", type=int, default=50000, help="0: no data.cache=false baseline")
    parser.add_argument("--celeba", type=int, default=20000)
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic sets")
    # a measurement's own process
    parser.add_argument("--worker", choices=["launch", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--load-before", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "launch":
        Path(args.result).write_text(json.dumps(worker_launch(args)))
        return
    if args.worker == "memory":
        worker_memory(args)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a time limit still deletes the synthetic sets
    print(f"bench_data: {os.cpu_count()} CPUs, load {load():.2f}, device {args.device}", flush=True)
    results: dict[str, Any] = {"device": args.device, "cpus": os.cpu_count()}
    if args.root:
        args.root.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench_data-", dir=args.root))
    try:
        for section in args.sections:
            SECTIONS[section](args, root, results)
            if args.out:  # after every section: a later failure keeps the figures so far
                args.out.write_text(json.dumps(results, indent=1))
    finally:
        if args.keep:
            print(f"synthetic data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
