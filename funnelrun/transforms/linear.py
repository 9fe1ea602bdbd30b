"""Linear bijections: an LU-parameterised invertible linear map (Glow, Kingma & Dhariwal 2018,
Sec. 3.2) and fixed feature permutations (RealNVP/Glow channel shuffles)."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from funnelrun.transforms.base import Transform, zero_contribution


class LULinear(Transform):
    """z = W x + b with W = L U: L unit lower-triangular, U upper with diagonal softplus(raw) + eps.

    The strictly lower part of L, the strictly upper part of U and the raw diagonal of U share one
    (D, D) parameter. Starts as the identity. log|det W| = sum log diag(U), the same for every
    example. Glow's fixed permutation P of W = P L U is left to a separate permutation layer.
    """

    def __init__(self, features: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        unit_diagonal = math.log(math.expm1(1.0 - eps))
        self.lu = nn.Parameter(torch.diag(torch.full((features,), unit_diagonal)))
        self.bias = nn.Parameter(torch.zeros(features))

    def _factors(self) -> tuple[Tensor, Tensor, Tensor]:
        """(L, U, diag U)."""
        diagonal = F.softplus(torch.diagonal(self.lu)) + self.eps
        identity = torch.eye(self.lu.shape[0], dtype=self.lu.dtype, device=self.lu.device)
        lower = torch.tril(self.lu, -1) + identity
        upper = torch.triu(self.lu, 1) + torch.diag(diagonal)
        return lower, upper, diagonal

    def weight(self) -> Tensor:
        """The matrix W = L U."""
        lower, upper, _ = self._factors()
        return lower @ upper

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        lower, upper, diagonal = self._factors()
        z = F.linear(x, lower @ upper, self.bias)
        return z, torch.log(diagonal).sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        # Rows satisfy x U^T L^T = z - b: solve against L^T (unit upper), then U^T (lower).
        lower, upper, _ = self._factors()
        y = torch.linalg.solve_triangular(
            lower.mT, z - self.bias, upper=True, left=False, unitriangular=True
        )
        return torch.linalg.solve_triangular(upper.mT, y, upper=False, left=False)


class Permutation(Transform):
    """A fixed permutation of dimension 1 (features, or channels of images); log-det 0."""

    permutation: Tensor
    inverse_permutation: Tensor

    def __init__(self, permutation: Tensor):
        super().__init__()
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.permutation), zero_contribution(x)

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return z.index_select(1, self.inverse_permutation)


class RandomPermutation(Permutation):
    """A permutation drawn once from a seeded local generator (the global RNG is untouched)."""

    def __init__(self, features: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        super().__init__(torch.randperm(features, generator=generator))


class ReversePermutation(Permutation):
    """Reverses the order of the features."""

    def __init__(self, features: int):
        super().__init__(torch.arange(features - 1, -1, -1))
