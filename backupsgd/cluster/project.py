"""results/README.md's 100-1,000-worker projections, redone with the network measured on the cluster.

    python -m backupsgd.cluster.project --pingpong results/cluster/pingpong-1gbit.json --out results/cluster

The same simulations as results/paper/report.md's "Choosing N and b at 100 to 1,000 workers" (its
measured compute times, gradient size and fitted gradient-noise scales, copied below), with its
default network (10 Gbit/s, 50 us, full duplex, a ring) replaced by the cluster's: the shaped rate, the
ping-pong's latency, its duplex share, and Open MPI's own allreduce over TCP (`--allreduce openmpi`: the
algorithm coll/tuned picks for P and M, measured within 5% on the cluster's 2-8 nodes). Prints the table
and the `backupsgd simulate` line per P.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backupsgd.cluster.calibrate import network
from backupsgd.sim.recommend import rank
from backupsgd.sim.sweep import SimConfig, simulate

WORKERS = (100, 300, 1000)
BACKUPS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)  # those up to P/2, as the report's projection
STEPS = 200
MODEL_MB = 0.0657  # the digits MLP's fp32 gradient (results/paper/report.md)
# straggler -> (median measured compute s, fitted B_noise in worker minibatches), from results/paper/report.md
PANELS = {"exp:mean=0.01": (0.000852, 0.424), "pareto:scale=0.004,alpha=1.5": (0.000885, 0.678)}


def command(straggler: str, p: int, compute_s: float, noise: float, pp: dict) -> str:
    backups = ",".join(str(b) for b in BACKUPS if 2 * b <= p)
    net = network(pp, MODEL_MB)
    return (f"backupsgd simulate --workers {p} --backups {backups} --modes sync,backup --straggler {straggler} "
            f"--compute-s {compute_s:.6f} --model-mb {MODEL_MB} --steps {STEPS} --seed 0 --objective "
            f"time-to-accuracy --noise-scale {noise:.3f} --bandwidth-gbps {net.bandwidth_gbps:g} "
            f"--latency-us {net.latency_us:.1f} --duplex {net.duplex:.2f} --allreduce {net.allreduce}")


def project(pp: dict) -> list[dict]:
    rows = []
    for straggler, (compute_s, noise) in PANELS.items():
        for p in WORKERS:
            config = SimConfig(workers=(p,), backups=tuple(b for b in BACKUPS if 2 * b <= p), modes=("sync", "backup"),
                               straggler=straggler, compute_s=compute_s, steps=STEPS, seed=0,
                               net=network(pp, MODEL_MB), objective="time-to-accuracy", noise_scale=noise)
            preds = simulate(config).predictions
            sync = next(x for x in preds if x.mode == "sync")
            by_rate = rank(preds, "grads-per-s")[0].prediction
            ranked = rank(preds, "time-to-accuracy", noise)
            sync_tta = next(c for c in ranked if c.prediction.mode == "sync").time_to_accuracy_s
            rows.append({"straggler": straggler, "workers": p, "sync_step_ms": 1e3 * sync.step_s,
                         "best_b_grads_per_s": by_rate.backups, "its_step_ms": 1e3 * by_rate.step_s,
                         "grads_per_s_gain": by_rate.grads_per_s / sync.grads_per_s,
                         "best_b_time_to_accuracy": ranked[0].prediction.backups,
                         "time_to_accuracy_speedup": sync_tta / ranked[0].time_to_accuracy_s,
                         "command": command(straggler, p, compute_s, noise, pp)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| straggler | P | sync step, ms | best b for gradients/s (gain over sync) | its step, ms "
             "| best b for time to accuracy (speed-up) |", "|---|--:|--:|---|--:|---|"]
    for r in rows:
        lines.append(f"| {r['straggler'].split(':')[0]} | {r['workers']:,} | {r['sync_step_ms']:.1f} | "
                     f"{r['best_b_grads_per_s']} ({r['grads_per_s_gain']:.2f}x) | {r['its_step_ms']:.1f} | "
                     f"{r['best_b_time_to_accuracy']} ({r['time_to_accuracy_speedup']:.2f}x) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pingpong", default="results/cluster/pingpong-1gbit.json")
    parser.add_argument("--out", default="results/cluster")
    args = parser.parse_args()
    pp = json.loads(Path(args.pingpong).read_text())
    rows = project(pp)
    path = Path(args.out) / f"projection-{pp['bandwidth']}.json"
    path.write_text(json.dumps({"pingpong": args.pingpong, "rows": rows}, indent=2) + "\n")
    print(table(rows))
    print("\n".join(r["command"] for r in rows))


if __name__ == "__main__":
    main()
