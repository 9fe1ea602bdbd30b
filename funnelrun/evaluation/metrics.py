"""Likelihood metrics: nats per example and bits per dimension."""
from __future__ import annotations

import math
from typing import Optional


def bits_per_dim(nll_nats: float, data_dim: int, bits: Optional[int]) -> Optional[float]:
    """BPD = nll / (D * ln 2).

    ``nll_nats`` must already be the negative log-probability of the *discrete* data in nats, i.e.
    -log p(y) of the continuous model plus every preprocessing Jacobian plus D * log(2^bits) for the
    uniform dequantization onto a grid of spacing 2^-bits. BPD is undefined for continuous data
    (``bits is None``) and returned as None.
    """
    if bits is None:
        return None
    return nll_nats / (data_dim * math.log(2))
