"""One contiguous host buffer for every gradient of a step (Horovod's tensor fusion), and back.

A step votes and reduces once, on one buffer: every parameter's gradient flattened in a fixed order,
then two slots for scalars the members' sums carry along: the minibatch loss, and the squared norm of
the rank's own gradient (the members' sum of it, against the squared norm of their mean, measures the
gradient noise scale: backupsgd/noise.py). Unpacking scales during the copy into `.grad`, so averaging
costs no extra pass over the buffer.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class FusedGradients:
    """Packs the gradients of `params` (in this order) into a float32 host buffer and unpacks sums into `.grad`."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        self.size = sum(p.numel() for p in self.params)  # gradient floats, without the extra slots
        self.loss, self.sq_norm = self.size, self.size + 1  # the extra slots' indices
        self.length = self.size + 2

    def new_buffer(self) -> np.ndarray:
        return np.empty(self.length, dtype=np.float32)

    def pack(self, out: np.ndarray, loss: float = 0.0) -> None:
        """Write every gradient into `out[:size]` (a parameter without one, unused in this step, offers zeros),
        then `loss` and the gradient's squared norm into the extra slots."""
        host = torch.from_numpy(out[: self.size])
        offset = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                host[offset: offset + n].zero_()
            else:  # copy_ stages a device gradient through host memory in the same call
                host[offset: offset + n].copy_(p.grad.detach().reshape(-1))
            offset += n
        out[self.loss] = loss
        out[self.sq_norm] = self.squared_norm(out)

    def squared_norm(self, buf: np.ndarray, scale: float = 1.0) -> float:
        """|buf[:size] * scale|^2: one pass (BLAS), float32 sums, ample for a noise estimate."""
        grad = buf[: self.size]
        return float(np.dot(grad, grad)) * scale * scale

    def unpack(self, total: np.ndarray, scale: float) -> None:
        """Set every `.grad` to its slice of `total * scale` (allocating grads that do not exist yet)."""
        flat = torch.from_numpy(total[: self.size])
        offset = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                p.grad = torch.empty_like(p)
            src = flat[offset: offset + n].view_as(p)
            if p.grad.device != src.device:
                src = src.to(p.grad.device)
            torch.mul(src, scale, out=p.grad)
            offset += n

    def matches(self, total: np.ndarray, scale: float) -> bool:
        """Whether every `.grad` still holds exactly its slice of `total * scale` (nothing changed it since unpack)."""
        flat = torch.from_numpy(total[: self.size])
        offset = 0
        for p in self.params:
            n = p.numel()
            expected = flat[offset: offset + n].view_as(p) * scale
            if p.grad is None or not torch.equal(p.grad.detach().cpu(), expected):
                return False
            offset += n
        return True
