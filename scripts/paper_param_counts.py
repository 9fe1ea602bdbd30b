"""Funnels paper Table 8 (the parameters of the Table 4 models) against the models the experiment=
files build, and A.6's ordering for Table 1 (each funnel model below its baseline).

    .venv/bin/python scripts/paper_param_counts.py [--table1]

Builds every ``experiment=table4/mnist_*`` model (no data, no training: a few seconds) and prints a
Markdown table: the paper's count, ours, the difference and the relative difference. With
``--table1`` also every Table 1 row's count, each funnel model beside its baseline (the paper
gives no Table 1 counts, only the ordering). The counts are ``sum(p.numel() for p in
model.parameters())``, as the authors' ``nflows.utils.get_num_parameters``.
"""
from __future__ import annotations

import argparse

from hydra.utils import instantiate

from funnelrun.config import compose_config

#: funnels paper Table 8: (row, latent size, experiment, parameters)
TABLE8 = [
    ("VAE", 4, "table4/mnist_vae_4", 1_861_401),
    ("VAE", 16, "table4/mnist_vae_16", 1_879_857),
    ("F-NSF", 4, "table4/mnist_f_nsf_4", 7_286_164),
    ("F-NSF", 16, "table4/mnist_f_nsf_16", 5_464_623),
    ("F-MLP", 4, "table4/mnist_f_mlp_4", 1_890_324),
    ("F-MLP", 16, "table4/mnist_f_mlp_16", 1_888_020),
    ("NSF", 768, "table4/mnist_nsf", 4_724_430),
]
TABULAR = {"power": 6, "gas": 8, "hepmass": 21, "miniboone": 43, "bsds300": 63}


def count(experiment: str, shape: tuple[int, ...]) -> tuple[int, int]:
    model = instantiate(compose_config([f"experiment={experiment}"]).model, data_shape=shape)
    return sum(p.numel() for p in model.parameters()), model.latent_dim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table1", action="store_true", help="also Table 1's counts and A.6's ordering")
    args = parser.parse_args()
    print("| Table 8 row | LS (paper) | LS (ours) | experiment | paper | ours | ours - paper | relative |")
    print("|---|---|---|---|---|---|---|---|")
    for row, latent, experiment, paper in TABLE8:
        ours, ours_latent = count(experiment, (1, 28, 28))
        print(f"| {row} | {latent} | {ours_latent} | {experiment} | {paper:,} | {ours:,} | {ours - paper:+,} | "
              f"{100 * (ours / paper - 1):+.3f} % |")
    if not args.table1:
        return
    print("\n| data | NSF | F-NSF | F-NSF / NSF | Glow | F-Glow | F-Glow / Glow | VAE | F-MLP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for data, features in TABULAR.items():
        n = {row: count(f"table1/{data}_{row}", (features,))[0] for row in ("nsf", "f_nsf", "glow", "f_glow", "vae", "f_mlp")}
        print(f"| {data} | {n['nsf']:,} | {n['f_nsf']:,} | {n['f_nsf'] / n['nsf']:.4f} | {n['glow']:,} | "
              f"{n['f_glow']:,} | {n['f_glow'] / n['glow']:.4f} | {n['vae']:,} | {n['f_mlp']:,} |")


if __name__ == "__main__":
    main()
