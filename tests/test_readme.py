"""The README's commands as users type them: every ``funnelrun...`` line of README.md's bash blocks runs
as written, in this process, in README order, with only step counts and data sizes appended
(:func:`_sizes`), on embedded data or on files written here in the real formats (CIFAR-10 pickle
batches, MNIST and Fashion-MNIST IDX files, the MAF POWER array). Placeholders are filled with what
they name: ``<data dir>`` and ``<MAF data>`` the directories written here, ``<run>`` the run the
README's previous training command made, ``<acct>`` a name.

Commands that cannot run on this machine are composed instead (:func:`_cannot_run_here`): SLURM
submissions, and GPU trainers where torch finds no GPU (whose refusal is checked to be a clear
``funnelrun: error:``). A README command this file has never seen still runs (the defaults: exit
status 0, and a finished run has finite metrics); :data:`CHECKS` adds what particular commands
promise (e.g. CIFAR-10's latent of 192)."""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import shlex
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

import funnelrun
from funnelrun import cli
from funnelrun.config import check_overrides, compose_config
from funnelrun.errors import FunnelrunError
from funnelrun.validation import check_devices

README = Path(__file__).resolve().parents[1] / "README.md"
FUNNELRUN = str(Path(sys.executable).with_name("funnelrun"))
#: the run directory the README's resume command names
README_RESUME_DIR = "outputs/2026-11-22/10-00-00-123456"

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the README's commands -------------------------------------------------------------------------
def readme_commands() -> list[tuple[str, str]]:
    """(section title, command) for every line of a bash block that starts with ``funnelrun``
    (continued lines joined, the comment after `` # `` dropped, runs of spaces made one)."""
    commands, section, in_bash, pending = [], "", False, ""
    for line in README.read_text().splitlines():
        stripped = line.strip()
        if not in_bash and line.startswith("#"):
            section = line.lstrip("#").strip()
        elif stripped == "```bash":
            in_bash = True
        elif in_bash and stripped == "```":
            in_bash = False
        elif in_bash:
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            command, pending = " ".join(re.sub(r"\s+#\s.*$", "", pending).split()), ""  # comment dropped
            if command.startswith("funnelrun"):
                commands.append((section, command))
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_the_commands_this_file_knows():
    texts = [command for _, command in COMMANDS]
    assert len(texts) >= 25
    assert "funnelrun model=f_nsf data=cifar10_5bit data.data_dir=<data dir>" in texts  # the headline
    assert all(any(key in text for text in texts) for key in CHECKS), "a CHECKS entry matches no README command"


# -- data written in the real formats ----------------------------------------------------------------
def _idx(images: np.ndarray) -> bytes:
    return struct.pack(">iiii", 2051, *images.shape) + images.astype(np.uint8).tobytes()


def write_data(root: Path) -> tuple[Path, Path]:
    """``<data dir>`` (CIFAR-10, MNIST, Fashion-MNIST, a few images each) and ``<MAF data>`` (POWER)."""
    rng = np.random.default_rng(0)
    data = root / "data"
    cifar = data / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0] * 4}
        (cifar / name).write_bytes(pickle.dumps(batch, protocol=2))
    for folder, shift in (("MNIST", 0), ("FashionMNIST", 100)):
        raw = data / folder / "raw"
        raw.mkdir(parents=True)
        for name, n in (("train-images-idx3-ubyte", 24), ("t10k-images-idx3-ubyte", 16)):
            (raw / name).write_bytes(_idx((rng.integers(0, 156, (n, 28, 28)) + shift).astype(np.uint8)))
    maf = root / "maf" / "power"
    maf.mkdir(parents=True)
    np.save(maf / "data.npy", rng.normal(size=(3000, 8)))
    return data, root / "maf"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """A directory to run the README in (its relative outputs/ and multirun/ land there), with data."""
    root = tmp_path_factory.mktemp("readme")
    data, maf = write_data(root)
    return {"root": root, "data": data, "maf": maf, "run": None}


# -- how a command runs here ---------------------------------------------------------------------------
PLANE = ["data.n_train=512", "data.n_val=256", "data.n_test=300", "data.batch_size=64", "data.eval_batch_size=100",
         "eval.grid_points=20", "eval.num_samples=200"]
IMAGES = ["data.batch_size=4", "data.eval_batch_size=64", "data.val_size=4"]
TABULAR = ["data.batch_size=32", "data.eval_batch_size=512"]
STEPS = ["trainer.max_steps=4", "trainer.val_check_interval=2"]


def _first_values(overrides: list[str]) -> list[str]:
    """The overrides with every sweep replaced by its first value (to compose one job of a sweep)."""
    out = []
    for override, text in zip(OverridesParser.create().parse_overrides(overrides), overrides):
        if override.is_sweep_override():
            out.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        else:
            out.append(text)
    return out


def _overrides(argv: list[str]) -> list[str]:
    """The overrides of a ``funnelrun`` command line, as Hydra's own argument parser reads them."""
    return get_args_parser().parse_known_args(argv[1:])[0].overrides


def _sizes(argv: list[str]) -> list[str]:
    """The step counts and data sizes appended to a training command (none for help or --cfg)."""
    if "--help" in argv or "--cfg" in argv:
        return []
    cfg = compose_config(_first_values(_overrides(argv)))
    target = cfg.data._target_
    sizes = PLANE if "plane" in target else IMAGES if "images" in target else TABULAR
    extra = []
    if "stage1_steps" in cfg.model:
        extra.append("model.stage1_steps=2")
    if "hparams_search=f_nsf_optuna" in argv:
        extra.append("hydra.sweeper.n_trials=2")
    return [*sizes, *STEPS, *extra]


def _cannot_run_here(argv: list[str]) -> Optional[str]:
    if "hydra/launcher=slurm" in argv:
        return "a SLURM submission"
    cfg = compose_config(_first_values(_overrides(argv)))
    if str(cfg.trainer.accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        return "a GPU trainer on a machine without a GPU"
    return None


def _fill(command: str, ws: dict) -> list[str]:
    """The command's arguments with the placeholders filled in (before splitting: ``<data dir>``)."""
    names = {"<data dir>": str(ws["data"]), "<MAF data>": str(ws["maf"]), "<acct>": "lab"}
    if ws["run"] is not None:
        names["<run>"] = str(ws["run"])
    for name, value in names.items():
        command = command.replace(name, value)
    assert not re.search(r"<[a-zA-Z ]+>", command), f"a placeholder this file cannot fill: {command}"
    return shlex.split(command)


def _finished_runs(root: Path) -> dict[Path, float]:
    return {p.parent: p.stat().st_mtime for p in root.rglob("metrics.json")}


class Result:
    def __init__(self, code: int, out: str, err: str, new_runs: list[Path], ws: dict):
        self.code, self.out, self.err, self.new_runs, self.ws = code, out, err, new_runs, ws

    def metrics(self, run: Optional[Path] = None) -> dict:
        return json.loads(((run or self.new_runs[-1]) / "metrics.json").read_text())


def _run(argv: list[str], ws: dict, capsys, monkeypatch) -> Result:
    tool = {"funnelrun": None, "funnelrun-sample": cli.sample_main, "funnelrun-eval": cli.eval_main,
            "funnelrun-check": cli.check_main, "funnelrun-report": cli.report_main,
            "funnelrun-export": cli.export_main}[argv[0]]
    before = _finished_runs(ws["root"])
    capsys.readouterr()
    code = 0
    GlobalHydra.instance().clear()
    try:
        if tool is None:
            monkeypatch.setattr(sys, "argv", argv)
            cli.main()
        else:
            tool(argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    captured = capsys.readouterr()
    after = _finished_runs(ws["root"])
    new = sorted((p for p, t in after.items() if before.get(p) != t), key=lambda p: after[p])
    return Result(code, captured.out, captured.err, new, ws)


# -- what particular commands promise ---------------------------------------------------------------------
def _interrupted_run(ws: dict) -> int:
    """Before the README resumes ``outputs/2026-11-22/...``: a run there stopped by Ctrl-C (SIGINT)
    after its first checkpoint (a real process); returns the step it stopped at."""
    run_dir = ws["root"] / README_RESUME_DIR
    argv = [FUNNELRUN, f"hydra.run.dir={README_RESUME_DIR}", *PLANE, "trainer.max_steps=3000",
            "trainer.val_check_interval=10"]
    proc = subprocess.Popen(argv, cwd=ws["root"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 180
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-2000:]
    stopped = re.search(r"funnelrun: stopped by SIGINT at step (\d+)", err)
    assert stopped and "resume with: funnelrun" in err and f"hydra.run.dir={run_dir}" in err, err[-2000:]
    assert not (run_dir / "metrics.json").exists()
    return int(stopped.group(1))


def _check_latent(latent: int, data: int) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        m = r.metrics()
        assert (m["latent_dim"], m["data_dim"]) == (latent, data) and math.isfinite(m["test/nll"])
    return check


def _check_help(r: Result) -> None:
    assert r.out.startswith("funnelrun: train and test")
    assert "hydra/launcher  local, slurm" in r.out and "schema/" not in r.out
    assert "funnelrun-sample ckpt_path=<run>" in r.out and "trainer:\n  accelerator: cpu" in r.out


def _check_debug_fast(r: Result) -> None:
    m = r.metrics()
    assert (m["test/examples"], m["test/split_examples"]) == (200, 300)
    assert "over 200 of the 300 test examples (trainer.limit_test_batches)" in r.out


def _check_sweep(n: int, where: Optional[str] = None) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        assert len(r.new_runs) == n
        if where:
            assert all((r.ws["root"] / where) in run.parents for run in r.new_runs)
    return check


def _check_report(r: Result) -> None:
    assert "nsf-four_circles" in r.out and "f_nsf-four_circles" in r.out
    assert (r.ws["root"] / "multirun/four_circles/report.csv").is_file()


def _check_certificate(exact_run: bool) -> Callable[[Result], None]:
    def check(r: Result) -> None:
        result = json.loads(r.out.strip().splitlines()[-1])
        assert result["exact"] is True and result["roundtrip_max_abs_err"] < 1e-3
        assert result["logdet_max_abs_err"] < 1e-2
        if exact_run:  # a 2-D run: its density integrates to about 1 on the grid
            assert result["density_integral"] == pytest.approx(1.0, abs=0.05)
        else:
            assert result["density_integral"] is None
    return check


def _check_ldmask(r: Result) -> None:
    assert (r.new_runs[-1] / "ldmask" / "masks.pt").is_file()


def _check_local_sweep(r: Result) -> None:
    assert len(r.new_runs) == 2 and all((run.parent / ".submitit").is_dir() for run in r.new_runs)


def _check_optuna(r: Result) -> None:
    (results,) = r.ws["root"].glob("multirun/*/*/optimization_results.yaml")
    assert len(r.new_runs) == 2 and "best_value" in results.read_text()


def _check_resumed(r: Result) -> None:
    run = r.ws["root"] / README_RESUME_DIR
    assert r.new_runs == [run] and r.metrics(run)["steps"] == r.ws["resume_to"]


def _check_continued(r: Result) -> None:
    (new,) = r.new_runs
    assert new != r.ws["continued_from"] and r.metrics(new)["steps"] == r.ws["continue_to"]


def _check_samples(r: Result) -> None:
    (out,) = (r.ws["run"] / "samples").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", out.name)  # <run>/samples/<date>_<time>/
    for t in ("0.5", "0.75", "1.0"):
        assert torch.load(out / f"samples_T{t}.pt").shape == (5000, 2)
        assert (out / f"samples_T{t}.png").is_file()


def _check_eval(r: Result) -> None:
    (out,) = (r.ws["run"] / "eval").iterdir()
    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert metrics["ood_data"] == "fashion_mnist" and metrics["test/examples"] == metrics["ood/examples"] == 16
    assert metrics["ood/ratio"] > 0 and 0 <= metrics["ood/auroc"] <= 1


def _check_export(r: Result) -> None:
    (path,) = (r.ws["run"] / "exports").glob("*.pt")
    x = torch.randn(16, 2)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(path))(x), funnelrun.load_run(r.ws["run"]).model.log_prob(x), atol=1e-5)


#: command fragment -> what the command must also do (beyond exit status 0)
CHECKS: dict[str, Callable[[Result], None]] = {
    "funnelrun model=f_nsf data=cifar10_5bit": _check_latent(192, 3072),
    "funnelrun model=f_nsf data=digits": _check_latent(4, 64),
    "funnelrun model=f_nsf data=mnist": _check_latent(49, 784),
    "funnelrun model=f_nsf data=four_circles": _check_latent(1, 2),
    "funnelrun --help": _check_help,
    "funnelrun --cfg job model=nsf": lambda r: ("_target_: funnelrun.models.nsf.build_nsf" in r.out) or pytest.fail(r.out),
    "funnelrun debug=fast": _check_debug_fast,
    "funnelrun -m seed=0,1,2": _check_sweep(3),
    "funnelrun -m model=nsf,f_nsf seed=0,1,2": _check_sweep(6, "multirun/four_circles"),
    "funnelrun-report multirun/four_circles": _check_report,
    "funnelrun-check ckpt_path=<run>": _check_certificate(exact_run=True),
    "funnelrun-check model=f_nsf data=digits": _check_certificate(exact_run=False),
    "experiment=table1/power_f_nsf": lambda r: _check_sweep(3)(r) or _check_latent(4, 6)(r),
    "experiment=table4/mnist_f_mlp_16": _check_latent(16, 784),
    "experiment=realnvp_ldmask_mnist": _check_ldmask,
    "hydra/launcher=local": _check_local_sweep,
    "hparams_search=f_nsf_optuna": _check_optuna,
    f"hydra.run.dir={README_RESUME_DIR} ckpt_path=last": _check_resumed,
    "funnelrun ckpt_path=<run>/checkpoints/last.ckpt": _check_continued,
    "funnelrun-sample ckpt_path=<run>": _check_samples,
    "funnelrun-eval ckpt_path=<run> ood_data=fashion_mnist": _check_eval,
    "funnelrun-export ckpt_path=<run> export.format=torchscript": _check_export,
}


def _prepare(command: str, argv: list[str], ws: dict) -> list[str]:
    """Set up what a command expects to find; returns the step counts it needs instead of STEPS."""
    if f"hydra.run.dir={README_RESUME_DIR}" in command:
        step = _interrupted_run(ws)
        ws["resume_to"] = step + 4
        return [f"trainer.max_steps={step + 4}", "trainer.val_check_interval=2"]
    if command.startswith("funnelrun ckpt_path=<run>/checkpoints/last.ckpt"):
        ws["continued_from"] = ws["run"]
        ws["continue_to"] = json.loads((ws["run"] / "metrics.json").read_text())["steps"] + 4
        return [f"trainer.max_steps={ws['continue_to']}", "trainer.val_check_interval=2"]
    return []


#: commands whose run is marked slow (``make test-all``), and why
SLOW = {
    # ~40 s: two submitit jobs, each a new Python process importing torch and Lightning; the same
    # sweep runs in the default suite as tests/test_multirun.py::test_a_two_job_submitit_local_sweep...
    "funnelrun -m hydra/launcher=local seed=0,1": "submitit starts a process per job",
}


@pytest.mark.parametrize("section,command", [
    pytest.param(section, command, marks=[pytest.mark.slow] if command in SLOW else [], id=command)
    for section, command in COMMANDS
])
def test_readme_command_runs_as_written(section, command, workspace, capsys, monkeypatch):
    ws = workspace
    monkeypatch.chdir(ws["root"])
    monkeypatch.delenv("FUNNELRUN_OUTPUT_DIR", raising=False)
    monkeypatch.delenv("FUNNELRUN_DATA_DIR", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    argv = _fill(command, ws)
    trains = argv[0] == "funnelrun"
    reason = _cannot_run_here(argv) if trains else None
    if reason is not None:
        # composes as written, every value of every sweep; a GPU trainer here is refused clearly
        check_overrides(_overrides(argv), multirun="-m" in argv)
        cfg = compose_config(_first_values(_overrides(argv)))
        if "GPU" in reason:
            with pytest.raises(FunnelrunError, match="needs a CUDA GPU.*trainer=cpu"):
                check_devices(cfg)
        return
    steps = _prepare(command, argv, ws)
    if trains:
        sizes = _sizes(argv)
        argv = argv + ([s for s in sizes if not s.startswith("trainer.")] + steps if steps else sizes)
    result = _run(argv, ws, capsys, monkeypatch)
    assert result.code == 0, f"{command}\n{result.err[-3000:]}"
    assert "Traceback" not in result.err and "funnelrun: error" not in result.err
    for run in result.new_runs:
        assert math.isfinite(result.metrics(run)["test/nll"])
    for fragment, check in CHECKS.items():
        if fragment in command:
            check(result)
    if trains and result.new_runs:
        ws["run"] = result.new_runs[-1]
