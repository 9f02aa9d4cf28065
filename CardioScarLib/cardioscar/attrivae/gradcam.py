"""Grad-CAM of one latent dimension on the encoder's last conv layer.

For activations A_c of the last conv layer and the latent mean mu_d: weights w_c are the mean over
space of d mu_d / d A_c, and the map is ReLU(sum_c w_c A_c), upsampled (trilinear, half-voxel
aligned as the preprocessing resize) to the input cube and scaled to [0, 1] by its maximum (all
zero when nothing pushes mu_d up). The model needs ``encode_features(x)`` and
``latent_from_features(A) -> (mu, logvar)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def latent_gradcam(model: torch.nn.Module, volume: torch.Tensor, dim: int) -> np.ndarray:
    """Attention (cube, cube, cube) in [0, 1] of latent dimension ``dim`` for one volume (1, 1, n, n, n)."""
    model.eval()
    with torch.enable_grad():
        features = model.encode_features(volume).detach().requires_grad_(True)
        mu, _ = model.latent_from_features(features)
        (gradient,) = torch.autograd.grad(mu[0, dim], features)
    weights = gradient.mean(dim=(2, 3, 4), keepdim=True)
    cam = F.relu((weights * features.detach()).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=volume.shape[2:], mode="trilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    return (cam / peak if peak > 0 else torch.zeros_like(cam)).cpu().numpy().astype(np.float32)
