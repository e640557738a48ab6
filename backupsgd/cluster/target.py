"""Time to target accuracy under stragglers across nodes: sync, backup and ps-backup on the namespace cluster.

    python -m backupsgd.cluster.bench --only target      (as root; part of `make bench-cluster`)

The workload of results/README.md (digits MLP, batch 32, lr 0.05, exponential delays of mean 10 ms per
worker and step, evaluation every 10 steps, target 90% test accuracy), on W workers spread over the
nodes, a few seeds; the same seed draws the same delays and minibatches in every mode. The run
directories are kept only for the length of the bench (a temporary directory); what is kept is one row
per run, with the simulator's prediction of its step time from the run's own measured compute time.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from backupsgd.cluster import ClusterSpec, running_cluster
from backupsgd.cluster.calibrate import WITHIN, network
from backupsgd.cluster.launch import run
from backupsgd.report.runs import load_runs
from backupsgd.sim.model import predict_step_time

MIB = 1 << 20
WORKLOAD = ["--model", "mlp", "--batch-size", "32", "--lr", "0.05", "--eval-every", "10"]
MODES = {"sync": [], "backup": ["--backups", "1"], "ps-backup": ["--backups", "1", "--servers", "1"]}


def _train_args(mode: str, workers: int, seed: int, steps: int, straggler: str, out: Path) -> list[str]:
    ranks = workers + (1 if mode.startswith("ps-") else 0)
    return ["-n", str(ranks), sys.executable, "-m", "backupsgd", "train", "--no-progress", "--out", str(out),
            "--mode", mode, *MODES[mode], "--steps", str(steps), "--seed", str(seed), "--straggler", straggler,
            *WORKLOAD]


def measure(rate: str, out: Path, name: str, workers: int, seeds: list[int], steps: int, straggler: str,
            target: float, pp: dict | None, timeout: float) -> dict:
    nodes, slots = 3, 2  # room for W = 4 workers and a server, each node's link shared by 2 ranks
    spec = ClusterSpec(nodes=nodes, slots=slots, bandwidth=rate, name=name)
    rows = []
    with running_cluster(spec), tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:  # seeds outermost: the modes of one seed run back to back, under the same load
            for mode in MODES:
                run_dir = Path(tmp) / f"{mode}-s{seed}"
                rc = run(spec, _train_args(mode, workers, seed, steps, straggler, run_dir), timeout)
                if rc != 0:
                    raise RuntimeError(f"train failed ({rc}): {mode} seed {seed}")
                (r,), _ = load_runs(run_dir)
                rows.append(_row(r, mode, seed, target, pp, straggler, workers))
                print(f"[bench-cluster] target {rate}: {mode} seed {seed}: {rows[-1]['time_to_target_s']} s to "
                      f"{target:.0%}, step {rows[-1]['step_ms']:.1f} ms", flush=True)
    data = {"command": f"backupsgd cluster up --nodes {nodes} --slots {slots} --bandwidth {rate}; then per mode and "
                       f"seed: backupsgd cluster run -- -n {workers} (ps-backup: {workers + 1}) python -m backupsgd "
                       f"train --mode MODE (backup: --backups 1; ps-backup: --backups 1 --servers 1) --steps {steps} "
                       f"--seed SEED --straggler {straggler} {' '.join(WORKLOAD)}",
            "cluster": {"nodes": nodes, "slots": slots, "bandwidth": rate}, "workers": workers, "target": target,
            "straggler": straggler, "steps": steps, "rows": rows}
    (out / f"target-{rate}.json").write_text(json.dumps(data, indent=2) + "\n")
    return data


def _row(r, mode: str, seed: int, target: float, pp: dict | None, straggler: str, workers: int) -> dict:
    step_s, compute_s = r.mean_step_s(), r.median_compute_s()
    model_mb = np.load(r.path / "params.npy").size * 4 / MIB
    row = {"mode": mode, "seed": seed, "time_to_target_s": r.time_to(target), "steps_to_target": r.steps_to(target),
           "final_accuracy": r.final_accuracy, "step_ms": step_s * 1e3, "compute_ms": compute_s * 1e3,
           "hosts": r.summary.get("hosts"), "model_mb": model_mb}
    if pp is not None:
        b = 1 if mode != "sync" else 0
        pred = predict_step_time(mode, workers, b, straggler, compute_s, network(pp, model_mb), steps=r.config["steps"],
                                 seed=seed)
        row["sim_step_ms"] = pred.step_s * 1e3
    return row


def table(data: dict) -> str:
    lines = [f"| mode | seed | time to {data['target']:.0%}, s | steps to it | final accuracy | step ms | "
             "sim step ms | measured ÷ sim |", "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        tt = "not reached" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.2f}"
        sim = r.get("sim_step_ms")
        ratio = "" if sim is None else f"{r['step_ms'] / sim:.2f}" + ("" if abs(r["step_ms"] / sim - 1) <= WITHIN
                                                                      else " ✗")
        lines.append(f"| {r['mode']} | {r['seed']} | {tt} | {r['steps_to_target']} | {r['final_accuracy']:.3f} | "
                     f"{r['step_ms']:.1f} | {'' if sim is None else f'{sim:.1f}'} | {ratio} |")
    lines += ["", "| mode | median time to target, s | median step ms |", "|---|---|---|"]
    for mode in MODES:
        mine = [r for r in data["rows"] if r["mode"] == mode]
        reached = [r["time_to_target_s"] for r in mine if r["time_to_target_s"] is not None]
        med = f"{np.median(reached):.2f} ({len(reached)}/{len(mine)} reached)" if reached else "not reached"
        lines.append(f"| {mode} | {med} | {np.median([r['step_ms'] for r in mine]):.1f} |")
    return "\n".join(lines)
