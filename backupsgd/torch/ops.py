"""Horovod's reduction ops and gradient compressions, by the same names, and what cannot work here."""

from __future__ import annotations

import numpy as np

# The values of horovod.torch's Average, Sum and Adasum, so a script that stores or compares them still works.
Average, Sum, Adasum = 0, 1, 2

_ADASUM_WHY = ("Adasum combines every rank's gradient each step, but a step here takes only its first N; use "
               "op=hvd.Average (or hvd.Sum), or run the real horovod.torch for Adasum")


def check_op(op: int) -> None:
    if op == Adasum:
        raise ValueError(f"op=hvd.Adasum is not supported by backupsgd.torch: {_ADASUM_WHY}")
    if op not in (Average, Sum):
        raise ValueError(f"unknown op {op!r}; use hvd.Average or hvd.Sum")


class NoneCompressor:
    """The gradient is offered as computed (float32)."""

    @staticmethod
    def round(buf: np.ndarray) -> None:
        pass


class FP16Compressor:
    """Each rank's gradient is rounded to half precision before it is offered, as Horovod's fp16 compression
    rounds it; the exchange itself stays float32 (the members' sum is not rounded again), so this gives the
    numerics of compression but not its bandwidth saving."""

    @staticmethod
    def round(buf: np.ndarray) -> None:
        buf[:] = buf.astype(np.float16).astype(np.float32)


class Compression:
    """Horovod's `hvd.Compression.none` and `hvd.Compression.fp16`."""

    none = NoneCompressor
    fp16 = FP16Compressor


class SyncBatchNorm:
    """Refused: batch statistics synchronised every step need every rank every step."""

    def __init__(self, *args, **kwargs) -> None:
        raise ValueError("hvd.SyncBatchNorm needs every rank in every forward pass, but with backup workers a step "
                         "goes on without its slowest ranks; use torch.nn.GroupNorm or LayerNorm (no cross-rank "
                         "statistics), or plain BatchNorm with per-rank statistics")
