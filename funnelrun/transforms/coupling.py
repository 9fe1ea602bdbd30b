"""Coupling layers: transform the masked features conditioned on the others (and the context).

Affine coupling follows RealNVP (Dinh et al. 2017) with Glow's stable scale (Kingma & Dhariwal
2018); spline coupling is the RQ-NSF (C) layer of Durkan et al. 2019, "Neural Spline Flows",
optionally with that paper's unconditional spline on the identity features (``unconditional``: the
``apply_unconditional_transform`` of its UCI experiments, which the funnels authors keep).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union, cast

import torch
from torch import Tensor, nn

from funnelrun.transforms.base import Transform, sum_except_batch
from funnelrun.transforms.nets import ResidualNet
from funnelrun.transforms.splines import RQSpline, identity_spline_params, packed_rational_quadratic_spline


def alternating_mask(features: int, even: bool) -> Tensor:
    """0/1 mask transforming the even-indexed features (``even=True``) or the odd-indexed ones."""
    return (torch.arange(features) % 2 == (0 if even else 1)).long()


class LearnedConstant(nn.Module):
    """Conditioner with nothing to condition on: a learned output shared by every example."""

    def __init__(self, value: Tensor):
        super().__init__()
        self.value = nn.Parameter(value.clone())

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        return self.value.expand(x.shape[0], -1)


class Coupling(Transform):
    """Base coupling layer: z_A = x_A, z_B = f(x_B; theta(x_A, context)) for mask 1 = B.

    Subclasses define the elementwise map ``_elementwise``; the conditioner is a ResidualNet whose
    final layer starts at zero weights and ``identity_params`` biases (a learned constant when
    every feature is transformed and there is no context).
    """

    identity_idx: Tensor
    transform_idx: Tensor
    output_order: Tensor

    def __init__(
        self,
        features: int,
        mask: Union[Tensor, Sequence[int]],
        identity_params: Tensor,
        context_features: Optional[int],
        hidden_features: int,
        num_blocks: int,
        dropout: float,
        use_batch_norm: bool,
    ):
        super().__init__()
        mask = torch.as_tensor(mask).reshape(-1)
        if mask.numel() != features or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask must be {features} zeros and ones, got {mask.tolist()}")
        transform_idx = torch.nonzero(mask == 1).reshape(-1)
        identity_idx = torch.nonzero(mask == 0).reshape(-1)
        if transform_idx.numel() == 0:
            raise ValueError("mask transforms no feature")
        self.register_buffer("identity_idx", identity_idx)
        self.register_buffer("transform_idx", transform_idx)
        self.register_buffer("output_order", torch.argsort(torch.cat([identity_idx, transform_idx])))
        self.params_per_feature = identity_params.numel()

        initial = identity_params.repeat(transform_idx.numel())
        if identity_idx.numel() == 0 and context_features is None:
            self.conditioner: nn.Module = LearnedConstant(initial)
        else:
            net = ResidualNet(
                identity_idx.numel(),
                initial.numel(),
                hidden_features,
                context_features,
                num_blocks,
                dropout,
                use_batch_norm,
            )
            with torch.no_grad():
                net.final_layer.weight.zero_()
                net.final_layer.bias.copy_(initial)
            self.conditioner = net

    def _elementwise(
        self, x: Tensor, params: Tensor, inverse: bool, with_logdet: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Map x (batch, n) with params (batch, n, p); return outputs and per-element log-dets
        (``with_logdet=False``: None may stand in for them, sampling needs none)."""
        raise NotImplementedError

    def _couple(
        self, x: Tensor, context: Optional[Tensor], inverse: bool, with_logdet: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        x_identity = x.index_select(1, self.identity_idx)
        x_transform = x.index_select(1, self.transform_idx)
        params = self.conditioner(x_identity, context).view(
            x.shape[0], x_transform.shape[1], self.params_per_feature
        )
        y, logabsdet = self._elementwise(x_transform, params, inverse, with_logdet)
        return x.index_copy(1, self.transform_idx, y), None if logabsdet is None else sum_except_batch(logabsdet)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return cast(tuple[Tensor, Tensor], self._couple(x, context, inverse=False))  # with its log-det

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        return self._couple(z, context, inverse=True, with_logdet=False)[0]


class RQSplineCoupling(Coupling):
    """Rational-quadratic spline coupling (NSF Sec. 3.2-3.3); starts as the identity.

    ``unconditional=True`` also maps the identity features x_A by an elementwise spline with learned
    per-feature knots (the same bins and tail bound), z_A = s(x_A), after the conditioner has read the
    untransformed x_A: the Jacobian stays triangular, log|det| = sum log s'(x_A) + sum log f'(x_B).
    """

    def __init__(
        self,
        features: int,
        mask: Union[Tensor, Sequence[int]],
        context_features: Optional[int] = None,
        hidden_features: int = 64,
        num_blocks: int = 2,
        dropout: float = 0.0,
        num_bins: int = 8,
        tail_bound: float = 3.0,
        use_batch_norm: bool = False,
        unconditional: bool = False,
    ):
        super().__init__(
            features,
            mask,
            identity_spline_params(num_bins),
            context_features,
            hidden_features,
            num_blocks,
            dropout,
            use_batch_norm,
        )
        self.num_bins = num_bins
        self.tail_bound = tail_bound
        identity = self.identity_idx.numel()
        #: the elementwise spline of the identity features (NSF's unconditional transform), or None
        self.unconditional = RQSpline(identity, num_bins, tail_bound) if unconditional and identity else None

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        z, logdet = super().forward(x, context)
        if self.unconditional is None:
            return z, logdet
        z_identity, logdet_identity = self.unconditional(z.index_select(1, self.identity_idx))
        return z.index_copy(1, self.identity_idx, z_identity), logdet + logdet_identity

    def inverse(self, z: Tensor, context: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
        if self.unconditional is not None:  # undo s first: the conditioner reads the untransformed x_A
            z = z.index_copy(1, self.identity_idx, self.unconditional.inverse(z.index_select(1, self.identity_idx)))
        return self._couple(z, context, inverse=True, with_logdet=False)[0]

    def _elementwise(
        self, x: Tensor, params: Tensor, inverse: bool, with_logdet: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        return packed_rational_quadratic_spline(
            x, params, self.num_bins, inverse=inverse, tail_bound=self.tail_bound, with_logdet=with_logdet
        )


class AffineCoupling(Coupling):
    """Affine coupling z_B = s * x_B + t with s = sigmoid(raw + 2) + 1e-3 (RealNVP, Glow).

    Log-det = sum log s. Starts with t = 0 and s = sigmoid(2) + 1e-3 (about 0.88), as in Glow.
    """

    def __init__(
        self,
        features: int,
        mask: Union[Tensor, Sequence[int]],
        context_features: Optional[int] = None,
        hidden_features: int = 64,
        num_blocks: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__(
            features,
            mask,
            torch.zeros(2),
            context_features,
            hidden_features,
            num_blocks,
            dropout,
            use_batch_norm=False,
        )

    def _elementwise(
        self, x: Tensor, params: Tensor, inverse: bool, with_logdet: bool = True
    ) -> tuple[Tensor, Optional[Tensor]]:
        shift, raw_scale = params[..., 0], params[..., 1]
        scale = torch.sigmoid(raw_scale + 2) + 1e-3
        if inverse:
            return (x - shift) / scale, -torch.log(scale)
        return x * scale + shift, torch.log(scale)
