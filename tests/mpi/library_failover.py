"""A script through backupsgd.torch that trains a CLI model (WORKLOAD) on the CLI's minibatches (rank r's batch at
step t is `Dataset.sample(seed, r, t)`), so its run equals tests/reference.replay of the recorded members.
tests/test_torch_failover.py kills ranks in it under ULFM; each survivor saves its parameters and what it saw.

    BACKUPSGD_BACKUPS=2 BACKUPSGD_FAULT=crash:rank=0,step=9 \
        mpirun --with-ft ulfm -n 5 python tests/mpi/library_failover.py OUT
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import backupsgd.torch as hvd
from backupsgd.data import load_dataset
from backupsgd.models import build_model
from backupsgd.optim import build_optimizer

# Logistic regression (convex, smooth), so the replay oracle is not chaotic: with the digits MLP a one-ulp
# difference in a step's sum (the dense reducer's order on 5, then 4 ranks, against the replay's) now and then
# flipped a ReLU, and 20 steps later the weights were 3e-3 apart (1 fresh-clone CI run failed so), as far as a
# stale member moves them. Here a 1e-6 kick at step 9 ends 1.6e-6 apart, while a member computing on a replica a
# step behind moves the weights by 6e-5 (at step 29) to 9e-4 (step 15), a wrong member by 6e-3, a momentum buffer
# lost at the failover by 0.3 (single-process checks).
WORKLOAD = {"model": "logreg", "dataset": "synthetic", "seed": 3, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
            "batch_size": 16}
EPOCHS, STEPS_PER_EPOCH = 3, 10

if __name__ == "__main__":
    out = Path(sys.argv[1])
    hvd.init()
    torch.set_num_threads(1)
    me, w = hvd.rank(), WORKLOAD  # `me`: this rank's data, kept when a shrink renumbers the ranks
    model = build_model(w["model"], w["seed"], w["dataset"])
    data = load_dataset(w["dataset"])
    optimizer = hvd.DistributedOptimizer(build_optimizer(w["optimizer"], model.parameters(), w["lr"], w["momentum"]),
                                         named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    losses = []
    for epoch in range(EPOCHS):
        for step in hvd.skip_missed(range(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)):
            assert optimizer.global_step == step, f"rank {me}: batch of step {step} at {optimizer.global_step}"
            x, y = data.sample(w["seed"], me, step, w["batch_size"])
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        # a metric over the living ranks: every rank ends the epoch on the same global step
        with torch.no_grad():
            loss = nn.functional.cross_entropy(model(data.x_test), data.y_test)
        losses.append(float(hvd.allreduce(loss)))
        hvd.log_eval(loss=losses[-1])
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    root = hvd.broadcast(params, root_rank=0)
    seen = hvd.allgather_object((me, hvd.rank(), hvd.size()))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"params-{me}.npy", params.numpy())
    (out / f"rank-{me}.json").write_text(json.dumps({
        "rank": hvd.rank(), "size": hvd.size(), "global_step": optimizer.global_step, "losses": losses,
        "seen": seen, "root_params_equal": bool(torch.equal(root, params))}))
    hvd.shutdown()
