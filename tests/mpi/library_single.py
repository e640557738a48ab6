"""backupsgd.torch on one rank (an MPI singleton), checked against plain torch: with P = 1 every step's average
is this rank's own gradient, so the wrapped optimizer must do exactly what the bare one does."""

import sys

import numpy as np
import torch
from torch import nn

import backupsgd.torch as hvd


def model_and_batches(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    batches = [(torch.randn(4, 8), torch.randint(0, 3, (4,))) for _ in range(6)]
    return model, batches


def train(wrap, make_optimizer, round_grads=lambda g: g, scheduler=False) -> np.ndarray:
    model, batches = model_and_batches()
    optimizer = make_optimizer(model.parameters())
    optimizer = wrap(optimizer, model)
    sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5) if scheduler else None
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for p in model.parameters():
            p.grad = round_grads(p.grad)
        optimizer.step()
        if sched:
            sched.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


def refused(call, words: str) -> None:
    try:
        call()
    except ValueError as exc:
        assert words in str(exc), f"{words!r} not in {exc}"
        return
    raise AssertionError(f"expected a ValueError saying {words!r}")


hvd.init()
assert (hvd.rank(), hvd.size(), hvd.backups(), hvd.quorum(), hvd.local_rank()) == (0, 1, 0, 1, 0)
hvd.init()  # the same settings again: nothing happens
refused(lambda: hvd.init(reducer="members"), "already initialised")

bare = lambda opt, model: opt
distributed = lambda opt, model: hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())
for name, make in [("sgd+momentum", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
                   ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01))]:
    assert np.array_equal(train(distributed, make, scheduler=True), train(bare, make, scheduler=True)), name
fp16 = lambda opt, model: hvd.DistributedOptimizer(opt, compression=hvd.Compression.fp16)
sgd = lambda ps: torch.optim.SGD(ps, lr=0.1)
assert np.array_equal(train(fp16, sgd), train(bare, sgd, round_grads=lambda g: g.half().float())), "fp16"
clipped = lambda opt, model: hvd.DistributedOptimizer(opt, max_grad_norm=0.05)


def clip_then_step(opt, model):
    class Clip:  # what max_grad_norm must equal: torch's own clipping before the step
        param_groups = opt.param_groups

        def zero_grad(self):
            opt.zero_grad()

        def step(self):
            nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            opt.step()
    return Clip()


assert np.array_equal(train(clipped, sgd), train(clip_then_step, sgd)), "max_grad_norm"

model, _ = model_and_batches()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
refused(lambda: hvd.DistributedOptimizer(opt, op=hvd.Adasum), "Adasum")
refused(lambda: hvd.SyncBatchNorm(16), "GroupNorm")
refused(lambda: hvd.DistributedOptimizer(opt, named_parameters=list(model.named_parameters())[:1]), "not named")
wrapped = hvd.DistributedOptimizer(opt)
refused(lambda: wrapped.step(closure=lambda: 0.0), "closure")
refused(lambda: wrapped.add_param_group({"params": [torch.zeros(1, requires_grad=True)]}), "before wrapping")

t = torch.arange(6, dtype=torch.float32).reshape(3, 2)
assert torch.equal(hvd.allreduce(t), t) and torch.equal(hvd.allreduce(t, op=hvd.Sum), t)
assert torch.equal(hvd.allgather(t), t) and torch.equal(hvd.broadcast(t, 0), t)
assert hvd.broadcast_object({"a": 1}) == {"a": 1} and hvd.allgather_object(7) == [7] and hvd.join() == 0
refused(lambda: hvd.allreduce(t, op=hvd.Adasum), "Adasum")
print("library checks passed", flush=True)
sys.exit(0)
