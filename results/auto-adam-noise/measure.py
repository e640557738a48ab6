"""B_simple plain and in Adam's preconditioned metric, along one single-process run of b = 2's training (N = 3 of 5).

    python results/auto-adam-noise/measure.py SEED [--steps 200] [--out FILE.jsonl]

Why: on the Python manual (Adam, lr 0.002) the static curves (results/auto-pareto-refit/curves-pydocs.txt) say a
fourth gradient saves a quarter of the steps early and almost none late, while the measured B_simple (plain metric)
grows late; the policy's noise model, fed it, values N = 4 late where it does not pay. Adam's update is
-lr m / (sqrt(v) + eps): under a quadratic model whose curvature Adam's preconditioner P = 1 / (sqrt(v) + eps)
matches, the noise that costs progress is tr(P Sigma) against G^T P G, i.e. B_simple in the norm |g|_P^2 =
sum_j P_j g_j^2 (McCandlish et al. 2018's B_simple with H ~ P^-1). Both metrics' estimates come from the same
gradients: each step computes all 5 workers' gradients (data as the engine draws it: sample(seed, worker, step)),
applies the mean of workers 0-2 with Adam (b = 2's N, each member equally likely to be any worker), and measures
|G|^2 and tr(Sigma) from all 5 (two batch sizes: 4 and 20 examples, backupsgd.noise.estimate) in each metric, P
from Adam's state before the step (bias-corrected, as its update uses it). Writes one JSON line a step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from backupsgd.config import WorkloadConfig  # noqa: E402
from backupsgd.data import load_dataset  # noqa: E402
from backupsgd.noise import estimate  # noqa: E402
from backupsgd.replica import Replica  # noqa: E402

WORKERS, MEMBERS, BATCH = 5, 3, 4


def adam_metric(optimizer: torch.optim.Adam, params: list[torch.Tensor]) -> np.ndarray | None:
    """P = 1 / (sqrt(v_hat) + eps) per parameter, flattened in the fused order; None before the first update."""
    group = optimizer.param_groups[0]
    beta2, eps = group["betas"][1], group["eps"]
    parts = []
    for p in params:
        state = optimizer.state.get(p)
        if not state:
            return None
        v_hat = state["exp_avg_sq"].reshape(-1) / (1 - beta2 ** float(state["step"]))
        parts.append(1.0 / (v_hat.sqrt() + eps))
    return torch.cat(parts).numpy().astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seed", type=int)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="-")
    args = parser.parse_args()
    torch.set_num_threads(1)
    wl = WorkloadConfig(model="gpt", dataset="pydocs", batch_size=BATCH, lr=0.002, optimizer="adam",
                        seed=args.seed, steps=args.steps)
    replica, data = Replica(wl, torch.device("cpu")), load_dataset("pydocs")
    size = replica.size
    bufs = [replica.new_buffer() for _ in range(WORKERS)]
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    for step in range(args.steps):
        metric = adam_metric(replica.optimizer, replica.params)
        for worker, buf in enumerate(bufs):
            replica.compute(*data.sample(args.seed, worker, step, BATCH), out=buf)
        grads = np.stack([b[:size].astype(np.float64) for b in bufs])
        record = {"step": step, "loss": float(np.mean([b[replica.fused.loss] for b in bufs[:MEMBERS]]))}
        for name, weight in (("plain", None), ("adam", metric)):
            if name == "adam" and weight is None:
                continue
            sq = (grads * grads) if weight is None else (grads * grads * weight)
            mean = grads.mean(axis=0)
            mean_sq = float(mean @ mean) if weight is None else float(mean * mean @ weight)
            own = estimate(float(sq.sum()), WORKERS, BATCH, mean_sq)
            record[name] = {"grad_sq": own.grad_sq, "trace_cov": own.trace_cov, "member_sq": own.member_sq}
        total = bufs[0].copy()
        for buf in bufs[1:MEMBERS]:
            total += buf
        replica.apply(total, 1.0 / MEMBERS)
        if (step + 1) % 10 == 0:
            record["eval"] = replica.evaluate(data)
        out.write(json.dumps(record) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
