"""The simulator's network set from the cluster, and its predictions beside the measured exchange and ps steps.

The network is what a user of `backupsgd simulate` would give it: the shaped link rate as the bandwidth,
and the one-way latency of a ping-pong between two nodes (`backupsgd.cluster.pingpong`). That ping-pong
also measures how much of the rate each direction gets when a link carries data both ways at once
(`--duplex`), which the ring allreduce does and the parameter server's push and pull phases do not.
Each prediction is shown twice: with the shaped rate alone (duplex 1, the model's textbook assumption)
and with the measured duplex share. With one rank per node the allreduce is modelled as Open MPI runs it
over TCP (sim.openmpi: coll/tuned's algorithm, whose large exchanges with one peer go one way at a time),
beside the textbook ring. With several ranks per node the allreduce is modelled as Open MPI
runs it across nodes (coll/han) and as the shm reducer does: hierarchical, shared memory within a node
and a ring over one leader per node across the links (sim.network.allreduce_s), beside the flat ring
over every rank that the model assumed before. What a training step costs besides compute and the wire
is a per-step overhead fitted per mode on measured runs (backupsgd.cluster.target.fit_overheads).
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from backupsgd.cluster import ClusterSpec, running_cluster
from backupsgd.cluster.launch import run
from backupsgd.cluster.topology import parse_rate
from backupsgd.sim.model import predict_step_time
from backupsgd.sim.network import NetConfig

WITHIN = 0.15  # the bar: a prediction within 15% of the measured time


def pingpong(rate: str, out: Path, name: str, timeout: float) -> dict:
    """Latency and both-ways throughput between two nodes at `rate`; written to pingpong-RATE.json."""
    spec = ClusterSpec(nodes=2, slots=1, bandwidth=rate, name=name)
    path = out / f"pingpong-{rate}.json"
    args = ["-n", "2", sys.executable, "-m", "backupsgd.cluster.pingpong", "--out", str(path)]
    with running_cluster(spec):
        rc = run(spec, args, timeout)
    if rc != 0:
        raise RuntimeError(f"ping-pong failed ({rc}): cluster run -- {shlex.join(args)}")
    data = json.loads(path.read_text())
    data["bandwidth"] = rate
    data["duplex"] = min(1.0, data["both_ways_gbps_each"] * 1e9 / parse_rate(rate))
    data["command"] = f"backupsgd cluster up --nodes 2 --slots 1 --bandwidth {rate}; backupsgd cluster run -- " \
                      f"-n 2 python -m backupsgd.cluster.pingpong --out {path.name}"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def network(pp: dict, model_mb: float, servers: int = 1, duplex: bool = True, ranks_per_node: int = 1,
            overhead_ms: float = 0.0, allreduce: str = "openmpi") -> NetConfig:
    """The simulator's network for this cluster: shaped rate, ping-pong latency, measured duplex share, and Open
    MPI's own allreduce over TCP (the cluster runs it; `allreduce="ring"`: the textbook ring instead); the ranks
    packed on each node (the hostfile's slots) and a fitted per-step overhead where given."""
    return NetConfig(model_mb=model_mb, bandwidth_gbps=parse_rate(pp["bandwidth"]) / 1e9,
                     latency_us=pp["latency_us"], servers=servers, duplex=pp["duplex"] if duplex else 1.0,
                     ranks_per_node=ranks_per_node, step_overhead_ms=overhead_ms, allreduce=allreduce)


def exchange_s(mode: str, workers: int, net: NetConfig) -> float:
    """The simulator's step time with no compute and no straggler: its exchange alone."""
    return predict_step_time(mode, workers, 1 if mode == "backup" else 0, "none", 0.0, net, steps=3).step_s


def _cell(measured_ms: float, predicted_s: float) -> str:
    ratio = measured_ms / (predicted_s * 1e3)
    mark = "" if abs(ratio - 1) <= WITHIN else " ✗"
    return f"{predicted_s * 1e3:.1f} | {ratio:.2f}{mark}"


def ps_table(ps: dict, pp: dict) -> str:
    """ps-sync, and the workers' allreduce (one rank per node) against the textbook ring at full duplex and
    against Open MPI's own algorithm over TCP (sim.openmpi) with the measured duplex share."""
    lines = ["| W | k | ps-sync ms | sim, ms | measured ÷ sim | allreduce ms | ring (duplex 1), ms | ratio "
             "| Open MPI's algorithm, ms | ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ps["rows"]:
        w, k, m = r["workers"], r["servers"], r["size_mib"]
        net = network(pp, m, servers=k)
        ring = replace(net, duplex=1.0, allreduce="ring")
        lines.append(f"| {w} | {k} | {r['ps_step_ms']:.1f} | {_cell(r['ps_step_ms'], exchange_s('ps-sync', w, net))} "
                     f"| {r['allreduce_step_ms']:.1f} | {_cell(r['allreduce_step_ms'], exchange_s('sync', w, ring))} "
                     f"| {_cell(r['allreduce_step_ms'], exchange_s('sync', w, net))} |")
    return "\n".join(lines)


def exchange_table(ex: dict, pp: dict) -> str:
    """Raw allreduce and the dense backup exchange of K nodes x r ranks against the flat ring over all P ranks
    (the model before ranks per node; a ring through the nodes crosses each link once each way, so a link
    carries one rank's 2(P-1)/P x M) and the hierarchical model (a ring over the K node leaders, with shared
    memory within a node), at full duplex and at the ping-pong's duplex share."""
    r = ex.get("cluster", {}).get("slots", 2)
    lines = ["| MiB | ranks | MPI_Allreduce ms | flat ring, ms | ratio | hierarchy (duplex 1), ms | ratio "
             "| hierarchy (measured duplex), ms | ratio | backup (dense) ms | hierarchy (duplex 1), ms | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in ex["rows"]:
        p, m = row["ranks"], row["size_mib"]
        flat, hier = network(pp, m, allreduce="ring"), network(pp, m, ranks_per_node=r)
        full = replace(hier, duplex=1.0)
        lines.append(f"| {m:g} | {p} | {row['mpi_ms']:.1f} | {_cell(row['mpi_ms'], exchange_s('sync', p, flat))} "
                     f"| {_cell(row['mpi_ms'], exchange_s('sync', p, full))} "
                     f"| {_cell(row['mpi_ms'], exchange_s('sync', p, hier))} | {row['backup_ms']:.1f} "
                     f"| {_cell(row['backup_ms'], exchange_s('backup', p, full))} |")
    return "\n".join(lines)


def pingpong_line(pp: dict) -> str:
    return (f"At {pp['bandwidth']}: one-way latency {pp['latency_us']:.1f} us (10th percentile of "
            f"{pp['small_round_trips']} round trips; median {pp['latency_us_median']:.1f} us), "
            f"{pp['size_mib']:g} MiB one way {pp['one_way_gbps']:.2f} Gbit/s, both ways at once "
            f"{pp['both_ways_gbps_each']:.2f} Gbit/s each (duplex share {pp['duplex']:.2f} of the rate). "
            f"`{pp['command']}`")
