"""2-D "plane" toy datasets, generated from a seed, with exact log densities where known.

Every sampler has the signature ``sampler(n, generator) -> Tensor`` of shape ``(n, 2)`` and
dtype float32, and draws *only* from the ``torch.Generator`` it is given (never from the global
RNG), so a data set is a pure function of its seed.
"""
from __future__ import annotations

import hashlib
import math
from typing import Callable, Optional

import torch
from torch import Tensor

from funnelrun.data.base import FunnelDataModule, TensorRows

Sampler = Callable[[int, torch.Generator], Tensor]
Bounds = tuple[tuple[float, float], tuple[float, float]]

#: Four-circles parameters (funnels paper, Fig. 2/5).
FOUR_CIRCLES_CENTRES = ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0))
FOUR_CIRCLES_RADIUS = 2.0
FOUR_CIRCLES_STD = 0.1


def _rand(n: int, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64)


def _randn(*shape: int, generator: torch.Generator) -> Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _randint(high: int, n: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, high, (n,), generator=generator)


def four_circles(n: int, generator: torch.Generator) -> Tensor:
    """Four noisy circles (funnels paper, Fig. 2/5).

    Pick a centre c uniformly among (±1, ±1), an angle θ ~ U[0, 2π), and return
    x = c + 2·(cos θ, sin θ) + ε with ε ~ N(0, 0.1² I). Not rescaled.
    """
    centres = torch.tensor(FOUR_CIRCLES_CENTRES, dtype=torch.float64)
    c = centres[_randint(4, n, generator)]
    theta = 2 * math.pi * _rand(n, generator)
    ring = FOUR_CIRCLES_RADIUS * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    eps = FOUR_CIRCLES_STD * _randn(n, 2, generator=generator)
    return (c + ring + eps).float()


def checkerboard(n: int, generator: torch.Generator) -> Tensor:
    """Checkerboard (NSF, Durkan et al. 2019; same code as FFJORD's ``checkerboard``).

    x1 ~ U[-4, 4); x2 is uniform on the two side-2 squares of x1's column that form a
    checkerboard: support = 8 squares of side 2 in [-4, 4]² (area 32), density exactly 1/32.
    Original: ``x1 = rand*4-2; x2_ = rand - randint(0,2)*2; x2 = x2_ + floor(x1) % 2; x = 2*(x1, x2)``.
    """
    x1 = _rand(n, generator) * 4 - 2
    x2_ = _rand(n, generator) - _randint(2, n, generator).double() * 2
    x2 = x2_ + torch.floor(x1) % 2
    return (2 * torch.stack([x1, x2], dim=1)).float()


def two_moons(n: int, generator: torch.Generator) -> Tensor:
    """Two moons (FFJORD's ``moons``: sklearn ``make_moons(noise=0.1)``, then ``x*2 + (-1, -0.2)``).

    Each point picks a moon with probability 1/2 and an angle t ~ U[0, π] (sklearn uses an even
    grid of t; uniform t gives an i.i.d. sample of the same law). Outer moon (cos t, sin t),
    inner moon (1 - cos t, 0.5 - sin t), plus N(0, 0.1² I) noise before the affine map.
    """
    t = math.pi * _rand(n, generator)
    inner = _randint(2, n, generator).bool()
    outer_pts = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    inner_pts = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where(inner[:, None], inner_pts, outer_pts)
    x = x + 0.1 * _randn(n, 2, generator=generator)
    return (2 * x + torch.tensor([-1.0, -0.2], dtype=torch.float64)).float()


def eight_gaussians(n: int, generator: torch.Generator) -> Tensor:
    """Eight Gaussians (FFJORD's ``8gaussians``).

    Centres at 4·(the 8 compass points of the unit circle), std 0.5, equal weights; the result
    is divided by 1.414 (so centres at radius ≈ 2.83, std ≈ 0.354).
    """
    s = 1 / math.sqrt(2)
    unit = torch.tensor(
        [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)], dtype=torch.float64
    )
    centres = 4.0 * unit[_randint(8, n, generator)]
    x = centres + 0.5 * _randn(n, 2, generator=generator)
    return (x / 1.414).float()


def two_spirals(n: int, generator: torch.Generator) -> Tensor:
    """Two spirals (FFJORD's ``2spirals``).

    r = sqrt(u)·540·2π/360 with u ~ U[0, 1); arm point (-cos r·r + U[0, .5), sin r·r + U[0, .5));
    the second arm is the first negated; divide by 3 and add N(0, 0.1² I). Here each point picks
    its arm with probability 1/2 (FFJORD puts exactly half in each, unshuffled).
    """
    r = torch.sqrt(_rand(n, generator)) * 540 * (2 * math.pi) / 360
    dx = -torch.cos(r) * r + _rand(n, generator) * 0.5
    dy = torch.sin(r) * r + _rand(n, generator) * 0.5
    sign = 1 - 2 * _randint(2, n, generator).double()
    x = sign[:, None] * torch.stack([dx, dy], dim=1) / 3
    x = x + 0.1 * _randn(n, 2, generator=generator)
    return x.float()


PLANE_SAMPLERS: dict[str, Sampler] = {
    "four_circles": four_circles,
    "checkerboard": checkerboard,
    "two_moons": two_moons,
    "eight_gaussians": eight_gaussians,
    "two_spirals": two_spirals,
}


def four_circles_log_density(x: Tensor) -> Tensor:
    """Exact log p(x) of :func:`four_circles`, shape (batch,), in x's dtype (float64 inside).

    p(x) = 1/4 Σ_c (1/2π) ∫ N(x; c + r(cos θ, sin θ), σ² I) dθ. The θ-integral has the closed form
    exp(-(d² + r²)/(2σ²)) I0(d r / σ²) / (2πσ²) with d = |x - c| (I0 the modified Bessel function),
    evaluated stably as log i0e(z) + z; it agrees with 4096-point periodic quadrature to ~1e-12.
    """
    xd = x.double()
    centres = torch.tensor(FOUR_CIRCLES_CENTRES, dtype=torch.float64, device=x.device)
    r, var = FOUR_CIRCLES_RADIUS, FOUR_CIRCLES_STD**2
    d = torch.linalg.vector_norm(xd[:, None, :] - centres[None], dim=-1)  # (batch, 4)
    z = d * r / var
    log_ring = -((d - r) ** 2) / (2 * var) + torch.log(torch.special.i0e(z)) - math.log(2 * math.pi * var)
    return (torch.logsumexp(log_ring, dim=1) - math.log(4)).to(x.dtype)


def four_circles_log_density_quadrature(x: Tensor, n_theta: int = 4096) -> Tensor:
    """Same density as :func:`four_circles_log_density`, by periodic quadrature over θ (a check)."""
    xd = x.double()
    centres = torch.tensor(FOUR_CIRCLES_CENTRES, dtype=torch.float64, device=x.device)
    theta = torch.arange(n_theta, dtype=torch.float64, device=x.device) * (2 * math.pi / n_theta)
    ring = FOUR_CIRCLES_RADIUS * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    means = (centres[:, None, :] + ring[None]).reshape(-1, 2)  # (4 * n_theta, 2)
    var = FOUR_CIRCLES_STD**2
    out = []
    for chunk in xd.split(256):
        sq = ((chunk[:, None, :] - means[None]) ** 2).sum(-1)
        log_n = -sq / (2 * var) - math.log(2 * math.pi * var)
        out.append(torch.logsumexp(log_n, dim=1) - math.log(4 * n_theta))
    return torch.cat(out).to(x.dtype)


def checkerboard_log_density(x: Tensor) -> Tensor:
    """Exact log p(x) of :func:`checkerboard`: -log 32 on the 8 squares, -inf elsewhere.

    The squares are taken closed (a measure-zero choice), so float32 rounding of a sample onto a
    square's edge never gives -inf.
    """
    u = x.double() / 2  # squares of side 1 in [-2, 2]^2; support: floor(u1) + floor(u2) even
    lower = [torch.floor(u[:, i]) for i in range(2)]
    upper = [torch.ceil(u[:, i]) - 1 for i in range(2)]  # differs from floor only on integers
    inside = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for a in (lower[0], upper[0]):
        for b in (lower[1], upper[1]):
            cell_ok = (a >= -2) & (a <= 1) & (b >= -2) & (b <= 1) & ((a + b) % 2 == 0)
            inside |= cell_ok
    out = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
    out[inside] = -math.log(32)
    return out.to(x.dtype)


TRUE_LOG_DENSITIES: dict[str, Callable[[Tensor], Tensor]] = {
    "four_circles": four_circles_log_density,
    "checkerboard": checkerboard_log_density,
}


def derived_seed(seed: int, *keys: str) -> int:
    """A 63-bit seed derived from ``seed`` and string keys (stable across runs and platforms)."""
    text = ":".join([str(seed), *keys]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def _generator(seed: int, *keys: str) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derived_seed(seed, *keys))
    return g


class PlaneDataModule(FunnelDataModule):
    """Train/val/test splits of a 2-D plane dataset; each split has its own generator from (seed, split).

    The splits are built in ``__init__`` (they are small), so the test split depends only on
    ``seed`` and ``name``, never on the model seed, the split sizes or the global RNG. Batches are
    (batch, 2) float32 tensors; training order and resumption come from :class:`FunnelDataModule`.
    """

    data_shape: tuple[int, ...] = (2,)
    #: Continuous data: bits per dimension are undefined.
    bits: Optional[int] = None

    def __init__(
        self,
        name: str,
        n_train: int = 50_000,
        n_val: int = 10_000,
        n_test: int = 10_000,
        batch_size: int = 256,
        eval_batch_size: int = 4096,
        seed: int = 1234,
        num_workers: int = 0,
        data_dir: Optional[str] = None,
    ):
        """``data_dir`` is accepted for a uniform data config and unused: plane sets are generated."""
        if name not in PLANE_SAMPLERS:
            raise ValueError(f"unknown plane dataset {name!r}; valid names: {sorted(PLANE_SAMPLERS)}")
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, num_workers=num_workers)
        self.name = name
        sampler = PLANE_SAMPLERS[name]
        self.train_data = sampler(n_train, _generator(seed, name, "train"))
        self.val_data = sampler(n_val, _generator(seed, name, "val"))
        self.test_data = sampler(n_test, _generator(seed, name, "test"))
        self.train, self.val, self.test = map(TensorRows, (self.train_data, self.val_data, self.test_data))
        self.true_log_density: Optional[Callable[[Tensor], Tensor]] = TRUE_LOG_DENSITIES.get(name)
        self.bounds: Bounds = self._bounds(self.train_data)

    @staticmethod
    def _bounds(data: Tensor) -> Bounds:
        """Box around the data with a margin of 10% of the range + 0.5 on each side."""
        lo, hi = data.min(dim=0).values, data.max(dim=0).values
        margin = 0.1 * (hi - lo) + 0.5
        low, high = (lo - margin).tolist(), (hi + margin).tolist()
        return (low[0], low[1]), (high[0], high[1])
