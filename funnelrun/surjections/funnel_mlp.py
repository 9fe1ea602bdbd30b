"""The MLP funnel layer (Klein et al. 2021, "Funnels", §3 "MLP funnels", A.6).

A dimension-reducing weight matrix W: R^n -> R^(n-m) is split into an invertible block R (on the
kept coordinates) and a generic block W' (on the m dropped ones):

    z = W x + b = R x_+ + W' x_- + b,
    V(x) = log p_phi(x_- | z) + log|det R|.

This is the funnel of eq. 6 whose map of the kept part, conditioned on the dropped part, is the
affine z = R x_+ + (W' x_- + b); its inverse samples x_- ~ p_phi(. | z), then solves
x_+ = R^{-1}(z - W' x_- - b), so forward(inverse(z)) == z (the right-inverse condition, A.1) and the
likelihood is exact. R is LU-parameterised (A.6), so log|det R| is a sum of log-diagonals. Dimension
increasing MLP funnels do not exist in this framework (A.7.2); a dimension-preserving F-MLP layer
is R alone, an :class:`~funnelrun.transforms.linear.LULinear`.
"""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from funnelrun.distributions.conditional import Conditional
from funnelrun.surjections.funnel import Funnel
from funnelrun.transforms.linear import LULinear


class ConditionalLULinear(LULinear):
    """z = R x + W' c + b: an LU-linear bijection of x whose shift depends linearly on a context c.

    log|det dz/dx| = log|det R| for every context. W' starts at zero, so the layer starts as the
    identity whatever the context.
    """

    def __init__(self, features: int, context_features: int):
        super().__init__(features)
        self.context_weight = nn.Parameter(self.lu.new_zeros(features, context_features))

    def _context_shift(self, context: Optional[Tensor]) -> Tensor:
        if context is None:
            raise ValueError("ConditionalLULinear needs the context its shift W' c depends on")
        return F.linear(context, self.context_weight)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        z, logdet = super().forward(x)
        return z + self._context_shift(context), logdet

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return super().inverse(z - self._context_shift(context))


class FunnelMLP(Funnel):
    """The F-MLP weight layer from ``in_features`` to ``out_features < in_features`` (funnels §3).

    The first ``in_features - out_features`` coordinates are dropped and scored under
    ``conditional`` = p_phi(x_- | z) (funnels A.6 uses a diagonal-Gaussian ansatz,
    :class:`~funnelrun.distributions.conditional.ConditionalDiagonalGaussian`), whose
    ``log_prob(x_-, z)`` and ``sample(z, temperature)`` it calls; ``temperature`` scales the std of
    the sampled x_-. Put a fixed permutation before the layer so that no particular coordinates are
    always dropped (funnels §3). The context of the layer is unused (unconditional models only).

    Example::

        layer = FunnelMLP(6, 4, ConditionalDiagonalGaussian(2, context_features=4))
        z, contribution = layer(torch.randn(8, 6))   # z: (8, 4), contribution: (8,)
    """

    def __init__(self, in_features: int, out_features: int, conditional: Conditional):
        if not 0 < out_features < in_features:
            raise ValueError(
                f"an MLP funnel maps {in_features} features to between 1 and {in_features - 1}, got "
                f"{out_features}; a dimension-preserving layer is an LULinear, and a dimension-"
                "increasing one is impossible with an exact likelihood (funnels paper A.7.2)"
            )
        dropped = in_features - out_features
        super().__init__(in_features, dropped, conditional, ConditionalLULinear(out_features, dropped))
