#!/usr/bin/env bash
# The GPU check: one command for a lent GPU, under 8 minutes, results under $OUT (or a given directory).
#
#   scripts/gpu_check.sh [OUT_DIR]                 on the GPU (default OUT_DIR: $OUT, else gpu_check_results)
#   scripts/gpu_check.sh --cpu-dry-run [OUT_DIR]   the same steps, tiny, on the CPU (what a test runs)
#   options: --only step,step  run only these steps; env: PYTHON (default .venv/bin/python, else python3),
#   FUNNELRUN_DATA_DIR (holds MNIST/raw; default ../shared/data or shared/data), GPU_CHECK_BUDGET_S (450; the
#   dry run: 900, and twice every step's limit)
#
# Steps, each with its own time limit (clamped so that the whole check stays within the budget), its
# output captured in OUT_DIR/<step>.log whether it passes or not, a failing step never stopping the next:
#   env           torch, CUDA, the GPU, package versions
#   cuda_tests    tests/test_cuda.py (marker cuda) on the GPU: every layer's round trip and log-det against
#                 the autograd Jacobian in fp32, the convolutional funnel and max-pool surjection, the 2-D
#                 density integral, log p against the CPU, the image batch path on the device
#   throughput    scripts/bench_throughput.py --device cuda --configs cifar10_5bit miniboone power
#   train_mnist   300 steps of experiment=table4/mnist_f_nsf_16 on the real MNIST: steps/s and the BPD curve
#   bench_data    scripts/bench_data.py --device cuda: loader examples/s, launch times, memory per rank
# then OUT_DIR/summary.md (a table of the steps, the figures) and OUT_DIR/summary.json. Exit status:
# 0 if every selected step passed, 1 otherwise, 2 for bad arguments or no GPU.
set -euo pipefail

dry=0
only=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --cpu-dry-run) dry=1; shift ;;
    --only) only=${2:?--only needs a comma-separated list of steps}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    -*) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
out_dir=${1:-${OUT:-gpu_check_results}}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

py=${PYTHON:-}
if [[ -z $py ]]; then
  if [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
fi
# the whole check's seconds, and a factor on every step's limit: the dry run runs on a small, often shared CPU
if [[ $dry == 1 ]]; then budget=${GPU_CHECK_BUDGET_S:-900}; scale=2; else budget=${GPU_CHECK_BUDGET_S:-450}; scale=1; fi
start=$SECONDS
device=cuda
trainer=gpu
if [[ $dry == 1 ]]; then device=cpu; trainer=cpu; fi
export FUNNELRUN_TEST_DEVICE=$device WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1
# the dry run shares a small CPU: one thread per process (several threads competing are slower there)
if [[ $dry == 1 ]]; then export OMP_NUM_THREADS=1; fi

data_dir=""
for candidate in "${FUNNELRUN_DATA_DIR:-}" ../shared/data shared/data; do
  if [[ -n $candidate && -d $candidate/MNIST/raw ]]; then data_dir=$(cd "$candidate" && pwd); break; fi
done

export py device trainer dry out_dir data_dir
steps_file=$out_dir/steps.tsv
: > "$steps_file"
failed=0

# run_step NAME LIMIT_S COMMAND...: run it with a time limit, its output in NAME.log; record the outcome
run_step() {
  local name=$1 limit=$(($2 * scale))
  shift 2
  if [[ -n $only && ",$only," != *",$name,"* ]]; then
    printf '%s\tnot selected\t0\n' "$name" >> "$steps_file"
    return 0
  fi
  local left=$((budget - (SECONDS - start)))
  if ((left < 10)); then
    printf '%s\tskipped: the %s s budget is spent\t0\n' "$name" "$budget" >> "$steps_file"
    failed=1
    return 0
  fi
  ((limit > left)) && limit=$left
  local t0=$SECONDS rc=0
  echo "gpu_check: $name (limit ${limit} s) ..." >&2
  if declare -F "$1" > /dev/null; then set -- bash -c "$1"; fi  # a function of this script (exported below)
  timeout --kill-after=10 "$limit" "$@" > "$out_dir/$name.log" 2>&1 || rc=$?
  local status=passed
  if ((rc == 124 || rc == 137)); then status="timed out after ${limit} s"; failed=1
  elif ((rc == 77)); then status="skipped: $(tail -n 1 "$out_dir/$name.log")"
  elif ((rc != 0)); then status="failed (exit $rc)"; failed=1
  fi
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" >> "$steps_file"
  echo "gpu_check: $name: $status ($((SECONDS - t0)) s)" >&2
}

# -- env ----------------------------------------------------------------------------------------
env_step() {
  command -v nvidia-smi > /dev/null && nvidia-smi || echo "nvidia-smi: not found"
  "$py" - "$device" <<'PY'
import importlib, platform, sys
import torch
device = sys.argv[1]
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda}, "
      f"cuda available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
for name in ("funnelrun", "lightning", "hydra", "numpy", "nflows", "zuko"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')} ({getattr(module, '__file__', '')})")
    except ImportError as exc:
        print(f"{name}: not importable ({exc})")
import funnelrun.conf  # the Hydra configs must be importable as a package (pip install -e .)
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch")
PY
}
export -f env_step
if ! "$py" -c "import funnelrun.conf" 2> /dev/null; then
  # the working tree is not installed in this Python: install it without touching its dependencies
  "$py" -m pip install --quiet --no-deps --no-build-isolation --no-index -e . > "$out_dir/install.log" 2>&1 || true
fi
run_step env 30 env_step
if [[ $dry == 0 ]] && ! "$py" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2> /dev/null; then
  echo "gpu_check: torch sees no CUDA device (see $out_dir/env.log); use --cpu-dry-run on a CPU" >&2
  exit 2
fi

# -- the exactness tests on the device -------------------------------------------------------------
run_step cuda_tests 90 "$py" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider -ra \
  --junitxml="$out_dir/cuda_tests.xml"

# -- throughput against the peer libraries -------------------------------------------------------
if [[ $dry == 0 ]]; then
  run_step throughput 110 "$py" scripts/bench_throughput.py --device cuda --configs cifar10_5bit miniboone power
else
  run_step throughput 110 "$py" scripts/bench_throughput.py --device cpu --configs cifar10_5bit miniboone power \
    --kinds coupling --rounds 1 --seconds 0.05 --warmup 1 --image-batch 4 --eval-batch 128 --sample-n 32
fi

# -- a few hundred steps of Table 4's MNIST F-NSF on the real MNIST ---------------------------------
train_mnist() {
  if [[ -z $data_dir ]]; then
    echo "no MNIST found (set FUNNELRUN_DATA_DIR to a directory holding MNIST/raw; tried ../shared/data, shared/data)"
    return 77
  fi
  local size=(trainer.max_steps=300 trainer.val_check_interval=50 trainer.log_every_n_steps=10 data.num_workers=4)
  if [[ $dry == 1 ]]; then
    # limit_*_batches are fractions here (the schema types them float): one batch of 100 images each
    size=(trainer.max_steps=4 trainer.val_check_interval=2 trainer.log_every_n_steps=1 data.batch_size=8
          data.eval_batch_size=100 trainer.limit_val_batches=0.01 trainer.limit_test_batches=0.01
          eval.plot=false)
  fi
  rm -rf "$out_dir/mnist_f_nsf_16"
  "$py" -c "from funnelrun.cli import main; main()" experiment=table4/mnist_f_nsf_16 "trainer=$trainer" \
    "data.data_dir=$data_dir" "hydra.run.dir=$out_dir/mnist_f_nsf_16" "${size[@]}"
}
export -f train_mnist
run_step train_mnist 100 train_mnist

# -- the data benchmark on the device --------------------------------------------------------------
if [[ $dry == 0 ]]; then
  run_step bench_data 130 "$py" scripts/bench_data.py --device cuda --sections throughput memory celeba \
    --cifar 50000 --imagenet32 100000 --imagenet64 50000 --batches 60 --memory-sizes 50000 --baseline-size 0 \
    --celeba 5000 --out "$out_dir/bench_data.json"
else
  run_step bench_data 130 "$py" scripts/bench_data.py --device cpu --sections throughput memory celeba \
    --cifar 1200 --imagenet32 0 --imagenet64 0 --batches 3 --memory-sizes 600 --baseline-size 0 \
    --celeba 40 --out "$out_dir/bench_data.json"
fi

# -- summary ------------------------------------------------------------------------------------------
"$py" - "$out_dir" "$device" "$((SECONDS - start))" <<'PY' || echo "gpu_check: the summary failed" >&2
import csv, json, sys
from pathlib import Path

out, device, seconds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
lines = [f"# GPU check ({device}), {seconds} s", "", "| step | outcome | seconds | log |", "|---|---|---|---|"]
lines += [f"| {name} | {status} | {secs} | {name}.log |" for name, status, secs in steps]
result = {"device": device, "seconds": seconds, "steps": {name: status for name, status, _ in steps}}

def tail(name: str, n: int) -> list[str]:
    path = out / f"{name}.log"
    return path.read_text(errors="replace").splitlines()[-n:] if path.exists() else []

if (out / "env.log").exists():
    lines += ["", "## Environment", "", *[f"    {l}" for l in tail("env", 40)]]
tests = [l for l in tail("cuda_tests", 30) if " passed" in l or " failed" in l or "SKIPPED" in l or "FAILED" in l]
if tests:
    lines += ["", "## Exactness tests on the device", "", *[f"    {l}" for l in tests]]
    result["cuda_tests"] = tests[-1]
run = out / "mnist_f_nsf_16"
if (run / "metrics.json").exists():
    metrics = json.loads((run / "metrics.json").read_text())
    curve = []
    for path in sorted(run.glob("csv/version_*/metrics.csv")):
        with path.open() as f:
            curve += [(int(r["step"]), float(r["val/bpd"])) for r in csv.DictReader(f) if r.get("val/bpd")]
    rate = metrics["steps"] / metrics["train_seconds"]
    result["train_mnist"] = {"steps": metrics["steps"], "train_seconds": metrics["train_seconds"],
                             "steps_per_s_incl_validation": rate, "val_bpd_curve": curve,
                             "test_bpd": metrics["test/bpd"], "exact": metrics["exact"]}
    lines += ["", "## experiment=table4/mnist_f_nsf_16 on MNIST", "",
              f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s: {rate:.2f} steps/s (validations included); "
              f"test BPD {metrics['test/bpd']:.4f} (exact: {metrics['exact']})", "", "| step | val BPD |", "|---|---|"]
    lines += [f"| {step} | {bpd:.4f} |" for step, bpd in curve]
throughput = [l for l in tail("throughput", 200) if l.startswith(("|", "#", "-"))]
if throughput:
    lines += ["", "## bench_throughput.py", "", *throughput]
if (out / "bench_data.json").exists():
    result["bench_data"] = json.loads((out / "bench_data.json").read_text())
    lines += ["", "## bench_data.py", "", *[l for l in tail("bench_data", 40)]]
(out / "summary.md").write_text("\n".join(lines) + "\n")
(out / "summary.json").write_text(json.dumps(result, indent=1))
print("\n".join(lines[:4 + len(steps)]))
PY
exit $failed
