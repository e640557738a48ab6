"""One worker's replica: model, optimizer, the fused gradient buffer, and digests of its state."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from torch.nn import functional as F

from backupsgd.config import WorkloadConfig
from backupsgd.data import Dataset, TextDataset
from backupsgd.fused import FusedGradients
from backupsgd.models import build_model
from backupsgd.optim import build_optimizer


def pick_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every prediction: one per example, or one per position of a text window."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


class Replica:
    """Computes this worker's gradient into one host buffer (+ the loss in the last slot) and applies updates."""

    def __init__(self, workload: WorkloadConfig, device: torch.device) -> None:
        self.workload, self.device = workload, device
        self.model = build_model(workload.model, workload.seed, workload.dataset).to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(workload.optimizer, self.params, workload.lr, workload.momentum)
        self.fused = FusedGradients(self.params)  # gradients, then the minibatch loss and the squared norm
        self.size = self.fused.size
        for p in self.params:
            p.grad = torch.zeros_like(p)
        self.loss_fn = cross_entropy

    def new_buffer(self) -> np.ndarray:
        """A fused buffer: every gradient, flattened, then the minibatch loss and the gradient's squared norm."""
        return self.fused.new_buffer()

    def compute(self, x: torch.Tensor, y: torch.Tensor, out: np.ndarray) -> float:
        """Forward and backward on one minibatch; writes the fused gradient into `out`, returns the loss."""
        self.model.train()
        for p in self.params:
            p.grad.zero_()
        loss = self.loss_fn(self.model(x.to(self.device)), y.to(self.device))
        loss.backward()
        self.fused.pack(out, loss.item())
        return float(out[self.fused.loss])

    def apply(self, total: np.ndarray, scale: float) -> None:
        """Apply the average `total * scale` with the optimizer (the same on every rank)."""
        self.fused.unpack(total, scale)
        self.optimizer.step()

    @torch.no_grad()
    def evaluate(self, data: Dataset) -> dict[str, float]:
        """Metrics on the dataset's fixed evaluation examples: `test_loss` (mean cross-entropy, nats) and
        `test_accuracy` for a classifier, `test_bits_per_byte` (the same loss in bits) for the language model."""
        self.model.eval()
        x, y = data.eval_split()
        logits = self.model(x.to(self.device))
        y = y.to(self.device)
        loss = float(self.loss_fn(logits, y))
        if isinstance(data, TextDataset):
            return {"test_loss": loss, "test_bits_per_byte": loss / math.log(2)}
        return {"test_loss": loss, "test_accuracy": float((logits.argmax(-1) == y).float().mean())}

    def state(self) -> dict:
        """Everything a checkpoint or a resynchronised rank needs to continue exactly as this replica would.

        The global torch RNG only seeds model init today, but a model with dropout would draw from it.
        Minibatches, straggler delays and injected faults are pure functions of (seed, rank, step), so
        for them the step is the state.
        """
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state()}

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])

    def flat_params(self) -> np.ndarray:
        return flat_params(self.params)

    def param_digest(self) -> str:
        return param_digest(self.params)

    def optimizer_digest(self) -> str:
        return optimizer_digest(self.optimizer)


def flat_params(params: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).cpu().numpy()


def param_digest(params: list[torch.Tensor]) -> str:
    """SHA-256 of the parameters' bytes: equal on two ranks only if they are bit-identical."""
    return hashlib.sha256(flat_params(params).tobytes()).hexdigest()


def optimizer_digest(optimizer: torch.optim.Optimizer) -> str:
    """SHA-256 of the optimizer's per-parameter state (momentum buffers, Adam moments, step counts)."""
    h = hashlib.sha256()
    state = optimizer.state_dict()["state"]
    for key in sorted(state):
        for name in sorted(state[key]):
            value = state[key][name]
            h.update(f"{key}.{name}".encode())
            h.update(value.detach().cpu().numpy().tobytes() if torch.is_tensor(value) else repr(value).encode())
    return h.hexdigest()
