"""One contiguous host buffer for every gradient of a step (Horovod's tensor fusion), and back.

A step votes and reduces once, on one buffer: every parameter's gradient flattened in a fixed order,
then `extra` slots for scalars the members' sums carry along (the minibatch loss). Unpacking scales
during the copy into `.grad`, so averaging costs no extra pass over the buffer.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class FusedGradients:
    """Packs the gradients of `params` (in this order) into a float32 host buffer and unpacks sums into `.grad`."""

    def __init__(self, params: Sequence[torch.Tensor], extra: int = 1) -> None:
        self.params = list(params)
        self.extra = extra
        self.size = sum(p.numel() for p in self.params)  # gradient floats, without the extra slots
        self.length = self.size + extra

    def new_buffer(self) -> np.ndarray:
        return np.empty(self.length, dtype=np.float32)

    def pack(self, out: np.ndarray) -> None:
        """Write every gradient into `out[:size]`; a parameter without one (unused in this step) offers zeros."""
        host = torch.from_numpy(out[: self.size])
        offset = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                host[offset: offset + n].zero_()
            else:  # copy_ stages a device gradient through host memory in the same call
                host[offset: offset + n].copy_(p.grad.detach().reshape(-1))
            offset += n

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
