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
from backupsgd.report.target import accuracy
from backupsgd.sim.calibrate import FIT_SEEDS, as_measured
from backupsgd.sim.model import compute_times, logged_times
from backupsgd.straggler import parse_straggler

MIB = 1 << 20
EVAL_EVERY = 10
WORKLOAD = ["--model", "mlp", "--batch-size", "32", "--lr", "0.05", "--eval-every", str(EVAL_EVERY)]
MODES = {"sync": [], "backup": ["--backups", "1"], "ps-backup": ["--backups", "1", "--servers", "1"]}


def _train_args(mode: str, workers: int, seed: int, steps: int, straggler: str, out: Path) -> list[str]:
    ranks = workers + (1 if mode.startswith("ps-") else 0)
    return ["-n", str(ranks), sys.executable, "-m", "backupsgd", "train", "--no-progress", "--out", str(out),
            "--mode", mode, *MODES[mode], "--steps", str(steps), "--seed", str(seed), "--straggler", straggler,
            *WORKLOAD]


def measure(rate: str, out: Path, name: str, workers: int, seeds: list[int], steps: int, straggler: str,
            target: float, timeout: float) -> dict:
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
                rows.append(_row(r, mode, seed, target))
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


def _row(r, mode: str, seed: int, target: float) -> dict:
    step_s, compute_s, goal = r.mean_step_s(), r.median_compute_s(), accuracy(target)
    return {"mode": mode, "seed": seed, "time_to_target_s": r.time_to(goal), "steps_to_target": r.steps_to(goal),
            "final_accuracy": r.final_value(goal), "step_ms": step_s * 1e3, "compute_ms": compute_s * 1e3,
            "hosts": r.summary.get("hosts"), "model_mb": np.load(r.path / "params.npy").size * 4 / MIB}


def predicted_step_ms(row: dict, data: dict, pp: dict, overhead_ms: float = 0.0) -> float:
    """The simulator's mean step for a run: its mode, seed and straggler (the same delays drawn), its median
    measured compute time, the calibrated network with the cluster's ranks per node, and `overhead_ms` per
    step; read as the run's own steps.jsonl is read (evaluation intervals left out)."""
    net = network(pp, row["model_mb"], ranks_per_node=data["cluster"]["slots"], overhead_ms=overhead_ms)
    times = compute_times(parse_straggler(data["straggler"], row["seed"]), data["workers"], row["compute_ms"] / 1e3,
                          data["steps"])
    return 1e3 * as_measured(logged_times(row["mode"], times, 0 if row["mode"] == "sync" else 1, net), EVAL_EVERY)


def fit_overheads(data: dict, pp: dict) -> dict[str, float]:
    """Per mode, the per-step overhead (ms) at which the median of measured minus predicted step time over the
    runs with seeds in FIT_SEEDS is zero; the other seeds are predicted out of sample. A few fixed-point
    rounds: a step grows by the overhead (sync exactly; with backups nearly, as carry-over shifts)."""
    fitted = {}
    for mode in MODES:
        basis = [r for r in data["rows"] if r["mode"] == mode and r["seed"] in FIT_SEEDS]
        overhead = 0.0
        for _ in range(3):
            gap = float(np.median([r["step_ms"] - predicted_step_ms(r, data, pp, overhead) for r in basis])) \
                if basis else 0.0
            overhead = max(0.0, overhead + gap)
        fitted[mode] = overhead
    return fitted


def _ratio(measured: float, predicted: float) -> str:
    ratio = measured / predicted
    return f"{ratio:.2f}" + ("" if abs(ratio - 1) <= WITHIN else " ✗")


def table(data: dict, pp: dict | None = None) -> str:
    overheads = fit_overheads(data, pp) if pp is not None else {}
    lines = [f"| mode | seed | time to {data['target']:.0%}, s | steps to it | final accuracy | step ms | "
             "sim step ms (network only) | measured ÷ sim | sim + overhead, ms | measured ÷ sim |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        tt = "not reached" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.2f}"
        sims = " | | | |"
        if pp is not None:
            bare, full = predicted_step_ms(r, data, pp), predicted_step_ms(r, data, pp, overheads[r["mode"]])
            fit = "" if r["seed"] in FIT_SEEDS else " (out of sample)"
            sims = f"{bare:.1f} | {_ratio(r['step_ms'], bare)} | {full:.1f} | {_ratio(r['step_ms'], full)}{fit} |"
        lines.append(f"| {r['mode']} | {r['seed']} | {tt} | {r['steps_to_target']} | {r['final_accuracy']:.3f} | "
                     f"{r['step_ms']:.1f} | {sims}")
    lines += ["", "| mode | median time to target, s | median step ms | fitted overhead, ms per step |",
              "|---|---|---|---|"]
    for mode in MODES:
        mine = [r for r in data["rows"] if r["mode"] == mode]
        reached = [r["time_to_target_s"] for r in mine if r["time_to_target_s"] is not None]
        med = f"{np.median(reached):.2f} ({len(reached)}/{len(mine)} reached)" if reached else "not reached"
        fitted = f"{overheads[mode]:.1f}" if mode in overheads else ""
        lines.append(f"| {mode} | {med} | {np.median([r['step_ms'] for r in mine]):.1f} | {fitted} |")
    return "\n".join(lines)
