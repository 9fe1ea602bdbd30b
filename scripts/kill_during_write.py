"""Issue 16 figure: SIGKILL during checkpoint writes never leaves a partial checkpoint, and the resumed
run ends exactly where the uninterrupted one does.

One uninterrupted reference run, then ``--kills`` trials. In each trial ``funnelrun`` runs with its
checkpoint writes slowed down (the serialized bytes go to the file in 32 chunks, 2 ms apart, so a
write lasts long enough to be hit; nothing else changes) and is SIGKILLed at a random moment within
a random one of its checkpoint writes (the k-th write's start, plus a uniform delay up to the length
of one write: inside the data write, or in the fsync and rename just after). Meanwhile a watcher
thread reads every ``checkpoints/*.ckpt`` it can see, every few milliseconds, with
``torch.load(weights_only=True)``: any that fails to load counts as "seen partial". After the kill
every checkpoint left is loaded again, then the same command is run again (auto_resume) and its
``metrics.json`` and final ``last.ckpt`` weights are compared with the reference's.

The run directories lie in ``--run-root`` (default: ``/dev/shm``, a tmpfs: another file system
than ``$TMPDIR``, which is set to ``--tmpdir``, default ``/tmp``); the script prints both devices.

    .venv/bin/python scripts/kill_during_write.py [--kills 10] [--seed 0] [--run-root /dev/shm]

Prints one line per trial and the counts: kills, kills that landed inside a data write, resumed
runs equal to the uninterrupted one (test/nll and val/nll exactly equal, every weight bit-equal),
checkpoints ever seen partial (goal 0), checkpoints left unloadable after a kill (goal 0).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

FUNNELRUN = str(Path(sys.executable).with_name("funnelrun"))
RUN = ["model=nsf", "model.hidden_features=16", "model.num_blocks=1", "model.num_bins=4", "data.n_train=1024",
       "data.n_val=256", "data.n_test=300", "data.batch_size=64", "data.eval_batch_size=128",
       "trainer.max_steps=60", "trainer.val_check_interval=10", "eval.plot=false"]
CHUNKS, PAUSE_S = 32, 0.002
#: runs ``funnelrun`` with slowed checkpoint writes, marking each write's start and end in $KILL_MARKS
SLOW_WRITER = r"""
import io, os, sys, time
from pathlib import Path
import torch
marks, real_save, count = Path(os.environ["KILL_MARKS"]), torch.save, [0]
def slow_save(obj, f, *args, **kwargs):
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    count[0] += 1
    (marks / f"start{count[0]}").touch()
    size = max(1, len(data) // %d)
    for i in range(0, len(data), size):
        f.write(data[i:i + size])
        f.flush()
        time.sleep(%g)
    (marks / f"end{count[0]}").touch()
torch.save = slow_save
from funnelrun.cli import main
sys.argv = ["funnelrun", *sys.argv[1:]]
main()
""" % (CHUNKS, PAUSE_S)


def _env(tmpdir: Path, marks: Path) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "TMPDIR": str(tmpdir),
            "KILL_MARKS": str(marks), "PYTHONUNBUFFERED": "1"}


class Watcher(threading.Thread):
    """Loads every checkpoint it sees until stopped; counts those that do not load."""

    def __init__(self, checkpoints: Path):
        super().__init__(daemon=True)
        self.checkpoints, self.stop, self.loads, self.partial = checkpoints, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            for path in list(self.checkpoints.glob("*.ckpt")) if self.checkpoints.is_dir() else []:
                try:
                    torch.load(path, weights_only=True)
                    self.loads += 1
                except FileNotFoundError:  # replaced or removed between the listing and the open
                    pass
                except Exception as exc:  # noqa: BLE001 - any failure to load is a partial file
                    self.partial.append(f"{path.name}: {type(exc).__name__}")
            time.sleep(0.003)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, weights_only=True)["state_dict"]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-root", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--tmpdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="kill-during-write-", dir=args.run_root))
    tmpdir = Path(tempfile.mkdtemp(prefix="kill-tmpdir-", dir=args.tmpdir))
    print(f"run directories in {root} (device {os.stat(root).st_dev}), $TMPDIR={tmpdir} "
          f"(device {os.stat(tmpdir).st_dev}): {'different' if os.stat(root).st_dev != os.stat(tmpdir).st_dev else 'the same'} "
          "file systems", flush=True)
    try:
        reference = root / "reference"
        done = _run([FUNNELRUN, f"hydra.run.dir={reference}", *RUN], _env(tmpdir, root))
        assert done.returncode == 0, done.stderr[-2000:]
        ref_metrics = json.loads((reference / "metrics.json").read_text())
        ref_weights = _weights(reference / "checkpoints" / "last.ckpt")
        writes = 2 * (60 // 10)  # best and last at each validation (at most)
        inside = equal = partial_seen = unloadable = 0
        for trial in range(args.kills):
            run_dir, marks = root / f"trial{trial}", root / f"marks{trial}"
            marks.mkdir()
            k, delay = rng.randint(1, writes), rng.uniform(0, CHUNKS * PAUSE_S * 1.5)
            watcher = Watcher(run_dir / "checkpoints")
            watcher.start()
            proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, f"hydra.run.dir={run_dir}", *RUN],
                                    env=_env(tmpdir, marks), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            while not (marks / f"start{k}").exists() and proc.poll() is None:
                time.sleep(0.0005)
            time.sleep(delay)
            in_write = (marks / f"start{k}").exists() and not (marks / f"end{k}").exists()
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            inside += in_write
            left = sorted((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").is_dir() else []
            bad = []
            for ckpt in left:
                try:
                    torch.load(ckpt, weights_only=True)
                except Exception as exc:  # noqa: BLE001
                    bad.append(f"{ckpt.name}: {type(exc).__name__}")
            unloadable += len(bad)
            resumed = _run([FUNNELRUN, f"hydra.run.dir={run_dir}", *RUN], _env(tmpdir, marks))
            watcher.stop.set()
            watcher.join()
            partial_seen += len(watcher.partial)
            same = False
            if resumed.returncode == 0:
                metrics = json.loads((run_dir / "metrics.json").read_text())
                weights = _weights(run_dir / "checkpoints" / "last.ckpt")
                same = (metrics["test/nll"] == ref_metrics["test/nll"] and metrics["val/nll"] == ref_metrics["val/nll"]
                        and weights.keys() == ref_weights.keys()
                        and all(torch.equal(weights[n], ref_weights[n]) for n in weights))
            equal += same
            print(f"trial {trial}: killed {delay * 1000:.0f} ms after write {k} started "
                  f"({'inside the data write' if in_write else 'after the data write: fsync/rename or later'}); "
                  f"left {[p.name for p in left]}, unloadable {bad}; watcher loaded {watcher.loads}, partial "
                  f"{watcher.partial}; resume rc {resumed.returncode}, equal to uninterrupted: {same}"
                  + ("" if resumed.returncode == 0 else f"\n  {resumed.stderr[-500:]}"), flush=True)
        print(f"\nkills: {args.kills}; inside a data write: {inside}; resumed runs equal to the uninterrupted one "
              f"(test/nll, val/nll, every weight bit-equal): {equal}/{args.kills}; checkpoints ever seen partial: "
              f"{partial_seen}; checkpoints unloadable after a kill: {unloadable}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
