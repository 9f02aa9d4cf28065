"""Latent traversal: decoded volumes as one attribute's latent dimension sweeps its training range.

The other coordinates stay at the case's own latent mean, so the strip shows what the network
associates with more or less of that attribute for this heart.
"""

from __future__ import annotations

import numpy as np
import torch

from cardioscar.attrivae.model import AttriVAE
from cardioscar.errors import CardioScarError


def traversal_values(low: float, high: float, steps: int) -> np.ndarray:
    """``steps`` evenly spaced coordinates from ``low`` to ``high`` (the training cases' range)."""
    if not 2 <= steps <= 50:
        raise CardioScarError(f"--steps must be in 2..50, got {steps}")
    return np.linspace(low, high, steps)


@torch.no_grad()
def latent_traversal(model: AttriVAE, mu: np.ndarray, dim: int, values: np.ndarray) -> np.ndarray:
    """Decoded volumes (steps, n, n, n) with coordinate ``dim`` of ``mu`` set to each of ``values``."""
    model.eval()
    device = next(model.parameters()).device
    z = torch.as_tensor(np.repeat(mu[None], len(values), axis=0), dtype=torch.float32, device=device)
    z[:, dim] = torch.as_tensor(values, dtype=torch.float32, device=device)
    return model.decode(z)[:, 0].cpu().numpy()
