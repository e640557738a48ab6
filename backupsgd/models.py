"""Models by name, shaped by their dataset and built identically on every rank from the run seed (no broadcast)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from backupsgd.config import MODELS
from backupsgd.plugins import build_user_model, is_import_path
from backupsgd.data import SHAPES, Shape


class _AsImage(nn.Module):
    """Views each example as a (channels, height, width) image, whether it is stored flat or not."""

    def __init__(self, image: tuple[int, int, int]) -> None:
        super().__init__()
        self.image = image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(len(x), *self.image)


def _mlp(shape: Shape) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, shape.classes))


def _cnn(shape: Shape) -> nn.Module:
    channels, height, width = shape.image  # type: ignore[misc]
    return nn.Sequential(
        _AsImage(shape.image),  # type: ignore[arg-type]
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (height // 2) * (width // 2), 64), nn.ReLU(), nn.Linear(64, shape.classes),
    )


def _logreg(shape: Shape) -> nn.Module:
    return nn.Linear(shape.features, shape.classes)  # type: ignore[arg-type]


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(8, cout),
        )
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def _resnet(shape: Shape) -> nn.Module:
    # GroupNorm, not BatchNorm: batch statistics would be per-worker state that the gradient exchange does not sync.
    channels = shape.image[0]  # type: ignore[index]
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, 1, 1, bias=False), nn.GroupNorm(8, 32), nn.ReLU(),
        _Block(32, 32, 1), _Block(32, 64, 2), _Block(64, 128, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, shape.classes),
    )


# The byte-level language model's size: 1.85 M parameters (4 blocks of width 192, 6 heads).
GPT_WIDTH, GPT_LAYERS, GPT_HEADS = 192, 4, 6


class _CausalBlock(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention, then a 4x MLP, each on a residual branch."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        q, k, v = (t.view(batch, time, self.heads, width // self.heads).transpose(1, 2)
                   for t in self.qkv(self.ln1(x)).split(width, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(batch, time, width))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """A small decoder-only transformer over bytes (nanoGPT's layout), the output layer tied to the embedding."""

    def __init__(self, vocab: int, context: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(_CausalBlock(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        # GPT-2's initialisation: N(0, 0.02), the residual projections scaled down by sqrt(2 * layers)
        # so the residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Next-byte logits, (batch, time, vocab), for (batch, time) byte values."""
        h = self.tokens(x) + self.positions(torch.arange(x.shape[1], device=x.device))
        for block in self.blocks:
            h = block(h)
        return self.ln(h) @ self.tokens.weight.T


def _gpt(shape: Shape) -> nn.Module:
    return GPT(shape.classes, shape.context, GPT_WIDTH, GPT_LAYERS, GPT_HEADS)  # type: ignore[arg-type]


_BUILDERS = {"mlp": _mlp, "cnn": _cnn, "logreg": _logreg, "resnet": _resnet, "gpt": _gpt}


def build_model(name: str, seed: int, dataset: str = "") -> nn.Module:
    """Model `name` shaped for `dataset` (default: the model's first dataset), initialised from `seed`;
    a name with a colon is a user's factory (backupsgd.plugins)."""
    torch.manual_seed(seed)
    if is_import_path(name):
        return build_user_model(name)
    return _BUILDERS[name](SHAPES[dataset or MODELS[name][0]])
