"""The Attri-VAE network: 3D convolutional VAE + MLP classifier on the latent.

Encoder: one block per stride (conv 3x3x3, BatchNorm, ReLU), a fully connected bottleneck, then
mu and log-variance. Decoder: the mirror image with transposed convolutions and a sigmoid. The
classifier reads the latent (64 -> 32 -> 16 -> 1 in the paper). The paper's 80^3 cube uses
strides 2,2,2,2,1 (a 5^3 last feature map); on a CPU a 32^3 cube with strides 2,2,2,1,1 keeps a
4^3 last map, enough for Grad-CAM to say where. :meth:`AttriVAE.encode_features` and
:meth:`AttriVAE.latent_from_features` split the encoder at its last conv layer for Grad-CAM.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from cardioscar.errors import CardioScarError


def default_strides(cube: int) -> tuple[int, ...]:
    """Paper strides for large cubes; one fewer down-sampling for small (CPU) cubes."""
    return (2, 2, 2, 2, 1) if cube >= 64 else (2, 2, 2, 1, 1)


def default_channels(cube: int) -> tuple[int, ...]:
    return (16, 32, 64, 128, 128) if cube >= 64 else (8, 16, 32, 64, 64)


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network (stored in the checkpoint)."""

    cube: int = 32
    channels: tuple[int, ...] = field(default=(8, 16, 32, 64, 64))
    strides: tuple[int, ...] = field(default=(2, 2, 2, 1, 1))
    latent_dim: int = 64
    bottleneck: int = 128
    classifier: tuple[int, ...] = (32, 16)

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.strides) or not self.channels:
            raise CardioScarError(f"channels {self.channels} and strides {self.strides} must have the same length")
        if any(s not in (1, 2) for s in self.strides):
            raise CardioScarError(f"strides must each be 1 or 2, got {self.strides}")
        if self.cube % self.reduction:
            raise CardioScarError(f"--cube {self.cube} must be a multiple of {self.reduction} (the product of the "
                                  f"strides {self.strides}), e.g. 32, 48 or 80")

    @property
    def reduction(self) -> int:
        return math.prod(self.strides)

    @property
    def feature_size(self) -> int:
        return self.cube // self.reduction

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Architecture":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def for_cube(cls, cube: int, **overrides) -> "Architecture":
        return cls(cube=cube, channels=overrides.pop("channels", default_channels(cube)),
                   strides=overrides.pop("strides", default_strides(cube)), **overrides)


def _down(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm3d(c_out), nn.ReLU())


def _up(c_in: int, c_out: int, stride: int, last: bool) -> nn.Sequential:
    conv = nn.ConvTranspose3d(c_in, c_out, 3, stride=stride, padding=1, output_padding=stride - 1)
    if last:
        return nn.Sequential(conv)
    return nn.Sequential(conv, nn.BatchNorm3d(c_out), nn.ReLU())


class AttriVAE(nn.Module):
    """VAE over (batch, 1, cube, cube, cube) volumes in [0, 1] with a classifier on its latent."""

    def __init__(self, architecture: Architecture):
        super().__init__()
        self.architecture = a = architecture
        widths = (1,) + tuple(a.channels)
        self.encoder_convs = nn.Sequential(*[_down(widths[i], widths[i + 1], s) for i, s in enumerate(a.strides)])
        flat = a.channels[-1] * a.feature_size ** 3
        self.bottleneck = nn.Sequential(nn.Flatten(), nn.Linear(flat, a.bottleneck), nn.ReLU())
        self.to_mu = nn.Linear(a.bottleneck, a.latent_dim)
        self.to_logvar = nn.Linear(a.bottleneck, a.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(a.latent_dim, a.bottleneck), nn.ReLU(),
                                         nn.Linear(a.bottleneck, flat), nn.ReLU())
        reverse = list(reversed(widths))
        strides = list(reversed(a.strides))
        self.decoder_convs = nn.Sequential(*[_up(reverse[i], reverse[i + 1], s, last=i == len(strides) - 1)
                                             for i, s in enumerate(strides)])
        sizes = (a.latent_dim,) + tuple(a.classifier)
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
        self.classifier = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def encode_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv layer's activations (Grad-CAM's target layer)."""
        return self.encoder_convs(x)

    def latent_from_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.bottleneck(features)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.latent_from_features(self.encode_features(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        a = self.architecture
        hidden = self.from_latent(z).view(-1, a.channels[-1], *(a.feature_size,) * 3)
        return torch.sigmoid(self.decoder_convs(hidden))

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """MI logit per case."""
        return self.classifier(z).squeeze(-1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return {"mu": mu, "logvar": logvar, "z": z, "reconstruction": self.decode(z), "logit": self.classify(z)}
