"""backupsgd.torch with DistributedOptimizer(batch_size=8): each rank's gradient is a known vector (the loss is
linear in the parameters: w . c_rank), so every step's noise estimate has a closed form in its recorded members
(tests/test_torch_library.py checks steps.jsonl against it). Run under mpirun with BACKUPSGD_RUN_DIR set."""

import numpy as np
import torch

import backupsgd.torch as hvd

STEPS, BATCH, DIM = 30, 8, 6


def direction(rank: int) -> np.ndarray:
    """A shared mean plus this rank's own part: a positive |G|^2, so the noise scale is defined."""
    return (1.0 + 0.5 * np.random.default_rng(rank).standard_normal(DIM)).astype(np.float32)


if __name__ == "__main__":
    hvd.init()
    w = torch.nn.Parameter(torch.zeros(DIM))
    optimizer = hvd.DistributedOptimizer(torch.optim.SGD([w], lr=0.1), batch_size=BATCH)
    c = torch.from_numpy(direction(hvd.rank()))
    for _ in hvd.skip_missed(range(STEPS)):
        optimizer.zero_grad()
        (w * c).sum().backward()
        optimizer.step()
    hvd.shutdown()
