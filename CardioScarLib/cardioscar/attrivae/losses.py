"""The four terms of the Attri-VAE loss.

total = reconstruction + beta * KL + alpha * BCE(MI) + gamma * sum over regularised attributes of
mean over pairs (i != j) of |tanh(delta * (z_i,d - z_j,d)) - sign(a_i - a_j)|. The last term asks
latent dimension ``d`` to order the cases as its attribute does (paper: beta 2, gamma 200,
delta 10). Reconstruction is the binary cross-entropy summed over voxels, KL summed over latent
dimensions, both averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    beta: float = 2.0
    alpha: float = 100.0  # ours: the BCE of one label is small beside a sum over 32^3 voxels
    gamma: float = 200.0
    delta: float = 10.0


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over voxels, averaged over the batch."""
    per_voxel = F.binary_cross_entropy(reconstruction, target, reduction="none")
    return per_voxel.flatten(1).sum(1).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over latent dimensions, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


def attribute_regularisation(z: torch.Tensor, attributes: torch.Tensor, dims: list[int],
                             delta: float) -> torch.Tensor:
    """Sum over attributes k of the mean over ordered pairs i != j of
    |tanh(delta * (z[i, dims[k]] - z[j, dims[k]])) - sign(a[i, k] - a[j, k])|.

    ``attributes`` is (batch, n_attributes), already scaled; a NaN value takes its case out of
    that attribute's pairs. An attribute with fewer than two known values adds nothing.
    """
    total = z.new_zeros(())
    for k, d in enumerate(dims):
        values = attributes[:, k]
        known = ~torch.isnan(values)
        if int(known.sum()) < 2:
            continue
        zk = z[known, d]
        ak = values[known]
        pair_z = torch.tanh(delta * (zk[:, None] - zk[None, :]))
        pair_a = torch.sign(ak[:, None] - ak[None, :])
        off_diagonal = ~torch.eye(len(zk), dtype=torch.bool, device=z.device)
        total = total + (pair_z - pair_a).abs()[off_diagonal].mean()
    return total


def classification_loss(logit: torch.Tensor, label: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy of the MI logit (``pos_weight`` balances the classes)."""
    return F.binary_cross_entropy_with_logits(logit, label, pos_weight=logit.new_tensor(pos_weight))


def attrivae_loss(outputs: dict[str, torch.Tensor], volumes: torch.Tensor, labels: torch.Tensor,
                  attributes: torch.Tensor, dims: list[int], weights: LossWeights,
                  pos_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """The weighted total and its parts (for logging)."""
    parts = {
        "reconstruction": reconstruction_loss(outputs["reconstruction"], volumes),
        "kl": kl_divergence(outputs["mu"], outputs["logvar"]),
        "classification": classification_loss(outputs["logit"], labels, pos_weight),
        "attribute": attribute_regularisation(outputs["z"], attributes, dims, weights.delta),
    }
    parts["total"] = (parts["reconstruction"] + weights.beta * parts["kl"] + weights.alpha * parts["classification"]
                      + weights.gamma * parts["attribute"])
    return parts
