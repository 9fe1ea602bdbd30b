"""Export agreement and file sizes: NSF and F-NSF on four circles with the shipped configs.

    .venv/bin/python scripts/export_figures.py [--steps 300] [--dir outputs/export_figures]

Trains each model for ``--steps`` steps (``funnelrun model=<m> data=four_circles``), exports it with
``funnelrun-export`` as TorchScript and ONNX, loads both (``torch.jit.load``, onnxruntime) and prints,
per model and format, the file size and the largest |log p difference| against the model on the
whole test split (10,000 points) and on the same points scaled by 4 (beyond the spline tail bounds),
beside the model's own float32 rounding error (its log p against the same weights in float64).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

import funnelrun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=Path("outputs/export_figures"))
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    rows = []
    for model in ("nsf", "f_nsf"):
        run_dir = args.dir / model
        if not (run_dir / "metrics.json").exists():
            subprocess.run([str(bin_dir / "funnelrun"), f"model={model}", "data=four_circles",
                            f"hydra.run.dir={run_dir}", f"trainer.max_steps={args.steps}",
                            f"trainer.val_check_interval={max(args.steps // 2, 1)}", "eval.plot=false"], check=True)
        run = funnelrun.load_run(run_dir)
        run.datamodule.setup("test")
        test = torch.cat(list(run.datamodule.test_dataloader()))
        with torch.no_grad():
            expected = {"test": run.model.log_prob(test), "x4": run.model.log_prob(4 * test)}
            # the model's own float32 rounding: the same weights in float64
            model64 = run.model.double()
            rounding = max((model64.log_prob(x.double()) - expected[s].double()).abs().max().item()
                           for s, x in (("test", test), ("x4", 4 * test)))
            run.model.float()
        for fmt, ext in (("torchscript", "pt"), ("onnx", "onnx")):
            out = run_dir / "exports" / f"{run.checkpoint.stem}.{ext}"
            if not out.exists():
                start = time.perf_counter()
                subprocess.run([str(bin_dir / "funnelrun-export"), f"ckpt_path={run_dir}", f"export.format={fmt}"],
                               check=True)
                seconds = time.perf_counter() - start
            else:
                seconds = float("nan")
            errors = {}
            for split, x in (("test", test), ("x4", 4 * test)):
                if fmt == "torchscript":
                    with torch.no_grad():
                        got = torch.jit.load(str(out))(x)
                else:
                    import onnxruntime

                    got = torch.from_numpy(onnxruntime.InferenceSession(str(out)).run(None, {"x": x.numpy()})[0])
                errors[split] = (got - expected[split]).abs().max().item()
            rows.append((model, fmt, out.stat().st_size, sum(p.numel() for p in run.model.parameters()),
                         errors["test"], errors["x4"], rounding, seconds))
    print("| model | format | file bytes | parameters | max abs err, test split | max abs err, test x 4 "
          "| model fp32 vs fp64 | export s |")
    print("|---|---|---|---|---|---|---|---|")
    for model, fmt, size, params, err, err4, rounding, seconds in rows:
        print(f"| {model} | {fmt} | {size:,} | {params:,} | {err:.2e} | {err4:.2e} | {rounding:.2e} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
