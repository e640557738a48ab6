"""`make bench-cluster`: the exchange and parameter-server benchmarks across namespace nodes with shaped links.

    python -m backupsgd.cluster.bench --out results/cluster      (as root; about 5 minutes on 2 cores)

For each link rate: `backupsgd bench exchange` on 2 nodes x 2 ranks (so the shm reducer is hierarchical:
in shared memory within a node, over the link across), and `backupsgd.ps.bench_job` (ps-sync against
the workers' allreduce) with every rank on a node of its own, servers on nodes 0..k-1, so each server's
ingress is one link. Writes JSON per benchmark and a README.md with the tables, the commands and the
machine. Each job runs under a timeout; the clusters (named `bsgdbench`) are removed even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from backupsgd.cluster import ClusterSpec, running_cluster
from backupsgd.cluster.launch import run
from backupsgd.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so the jobs import this checkout's backupsgd
NAME = "bsgdbench"


def _machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cpu_cores": os.cpu_count(), "kernel": platform.release(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _job(spec: ClusterSpec, args: list[str], timeout: float) -> None:
    rc = run(spec, args, timeout)
    if rc != 0:
        raise RuntimeError(f"job failed ({'timed out' if rc == 124 else rc}): cluster run -- {shlex.join(args)}")


def exchange(rate: str, out: Path, sizes: str, repeats: int, iters: int, timeout: float) -> dict:
    spec = ClusterSpec(nodes=2, slots=2, bandwidth=rate, name=NAME)
    path = out / f"exchange-{rate}.json"
    args = ["-n", "4", sys.executable, "-m", "backupsgd", "bench", "exchange", "--sizes", sizes,
            "--repeats", str(repeats), "--iters", str(iters), "--json", str(path)]
    with running_cluster(spec):
        _job(spec, args, timeout)
    data = json.loads(path.read_text())
    data["cluster"] = {"nodes": 2, "slots": 2, "bandwidth": rate}
    data["command"] = "backupsgd cluster run -- " + shlex.join(args[:2] + ["python"] + args[3:])
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def ps(rate: str, out: Path, workers: list[int], servers: list[int], size_mb: float, steps: int, repeats: int,
       timeout: float) -> dict:
    spec = ClusterSpec(nodes=max(workers) + max(servers), slots=1, bandwidth=rate, name=NAME)
    rows = []
    with running_cluster(spec), tempfile.TemporaryDirectory() as tmp:
        for w in workers:
            for k in servers:
                row_path = Path(tmp) / f"{w}-{k}.json"
                # slots=1: rank r runs on node n<r>; servers are ranks 0..k-1, so each has a node (a link) of its own
                _job(spec, ["-n", str(w + k), sys.executable, "-m", "backupsgd.ps.bench_job", "--servers", str(k),
                            "--size-mb", str(size_mb), "--steps", str(steps), "--repeats", str(repeats),
                            "--out", str(row_path)], timeout)
                row = json.loads(row_path.read_text())
                rows.append(row)
                print(f"[bench-cluster] ps {rate}: W={w} k={k} ps {row['ps_step_ms']:.1f} ms, "
                      f"allreduce {row['allreduce_step_ms']:.1f} ms", flush=True)
    path = out / f"ps-{rate}.json"
    data = {"command": f"backupsgd cluster up --nodes {spec.nodes} --slots 1 --bandwidth {rate}; then per (W, k): "
                       f"backupsgd cluster run -- -n W+k python -m backupsgd.ps.bench_job --servers k "
                       f"--size-mb {size_mb:g} --steps {steps} --repeats {repeats} --out FILE",
            "cluster": {"nodes": spec.nodes, "slots": 1, "bandwidth": rate}, "steps": steps, "repeats": repeats,
            "rows": rows}
    path.write_text(json.dumps(data, indent=2) + "\n")
    from backupsgd.ps.bench import plot

    plot(rows, str(path.with_suffix(".png")))
    return data


def _ps_table(data: dict, bits_per_s: float) -> str:
    """Measured step times beside link-rate bounds (no latency, no CPU cost). ps-sync pushes, then pulls:
    a server's link carries W x M/k in, then the same out, one after the other. A ring allreduce rank
    sends 2(W-1)/W x M through its link."""
    lines = ["| W | k | MiB into each server | ps-sync ms | bound 2·W·M/k ÷ rate | ratio | allreduce ms "
             "| bound 2(W-1)/W·M ÷ rate | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        w, k, m = r["workers"], r["servers"], r["size_mib"] * (1 << 20) * 8
        ps_bound, ring_bound = 1e3 * 2 * w * m / k / bits_per_s, 1e3 * 2 * (w - 1) / w * m / bits_per_s
        lines.append(f"| {w} | {k} | {r['bytes_in_per_server_mib']:.1f} | {r['ps_step_ms']:.1f} | {ps_bound:.1f} | "
                     f"{r['ps_step_ms'] / ps_bound:.2f} | {r['allreduce_step_ms']:.1f} | {ring_bound:.1f} | "
                     f"{r['allreduce_step_ms'] / ring_bound:.2f} |")
    return "\n".join(lines)


def write_readme(out: Path, exchanges: dict, pss: dict, machine: dict, argv: list[str]) -> None:
    from backupsgd.bench import format_rows
    from backupsgd.cluster.topology import parse_rate

    parts = [
        "# A cluster on one machine: exchange and parameter-server benchmarks across shaped links",
        "",
        f"Written by `python -m backupsgd.cluster.bench {shlex.join(argv)}` (what `make bench-cluster` runs, as root).",
        "",
        "Each node is a network namespace joined to a bridge by a veth pair shaped with `tbf` at the link rate "
        "both ways (`backupsgd cluster up`); Open MPI runs one daemon per node over TCP on the shaped `eth0` "
        "(`backupsgd cluster run`). No added latency: this kernel has no `netem`.",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores, Linux {machine['kernel']}. Load average "
        f"(1, 5, 15 min) before: {machine['load_average']}, after: {machine['load_average_after']}.",
        "",
        "**What these numbers do not show.** All nodes share these cores: every rank, every daemon and the "
        "kernel's forwarding of every packet. On this machine one TCP stream between two namespaces reached "
        "about 9.5 Gbit/s unshaped, so at 10 Gbit/s the CPU, not the link, is the limit, and the 10 Gbit/s "
        "rows measure the machine more than the network. When the load average above is near or over the core "
        "count, other jobs shared the cores during the run and the times are inflated by an unknown amount; "
        "compare columns of one run (they were interleaved), not runs. Medians over few repeats.",
    ]
    for rate, data in exchanges.items():
        parts += ["", f"## Exchange across 2 nodes x 2 ranks at {rate} (`exchange-{rate}.json`)", "",
                  f"`{data['command']}`", "",
                  "Reducers: dense (allreduce, non-members add zeros), members (only the N members reduce), shm "
                  "(within a node in shared memory, across nodes over the link: hierarchical), horovod.", "",
                  "```", format_rows(data["rows"], data.get("straggler")), "```"]
    for rate, data in pss.items():
        parts += ["", f"## Parameter server vs allreduce at {rate}, one rank per node (`ps-{rate}.json`, "
                      f"`ps-{rate}.png`)", "", f"`{data['command']}`", "",
                  "Servers are ranks 0..k-1 on nodes of their own; the allreduce runs among the W workers alone. "
                  f"M = {data['rows'][0]['size_mib']:g} MiB, medians of {data['repeats']} repeats of "
                  f"{data['steps']} steps; exchange only, no compute. Bounds are the link time alone at the "
                  "shaped rate: ps-sync's step is a push phase (W x M/k into each server) then a pull phase (the "
                  "same out), so 2 W M/k; a worker pushing its next gradient while the server still sends to "
                  "others overlaps the two a little, so a ratio can dip just under 1. The allreduce's bound is a "
                  "ring's 2(W-1)/W x M per rank; Open MPI chooses its own algorithm, which can send more.", "",
                  _ps_table(data, parse_rate(rate))]
    (out / "README.md").write_text("\n".join(parts) + "\n")


def _list(text: str, kind=int) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{text!r} is not a comma-separated list") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/cluster")
    parser.add_argument("--rates", default="1gbit,10gbit", help="Link rates for the exchange benchmark.")
    parser.add_argument("--sizes", default="1,16", help="Exchange buffer sizes, MiB.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--ps-rates", default="1gbit", help="Link rates for the parameter-server benchmark ('' skips).")
    parser.add_argument("--ps-workers", default="2,4,8")
    parser.add_argument("--ps-servers", default="1,2,4")
    parser.add_argument("--ps-size-mb", type=float, default=4.0)
    parser.add_argument("--ps-steps", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600, help="Seconds per MPI job.")
    parser.add_argument("--readme-only", action="store_true", help="Rewrite README.md from the JSON in --out.")
    args = parser.parse_args()
    # the jobs import this checkout's backupsgd, whatever is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    out = Path(args.out)
    if args.readme_only:
        load = lambda kind, rates: {r: json.loads((out / f"{kind}-{r}.json").read_text()) for r in _list(rates, str)}
        saved = json.loads((out / "machine.json").read_text())
        write_readme(out, load("exchange", args.rates), load("ps", args.ps_rates), saved, saved["argv"])
        return
    out.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    t0 = time.perf_counter()
    exchanges = {rate: exchange(rate, out, args.sizes, args.repeats, args.iters, args.timeout)
                 for rate in _list(args.rates, str)}
    print(f"[bench-cluster] exchange done in {time.perf_counter() - t0:.0f} s", flush=True)
    pss = {rate: ps(rate, out, _list(args.ps_workers), _list(args.ps_servers), args.ps_size_mb, args.ps_steps,
                    args.repeats, args.timeout) for rate in _list(args.ps_rates, str)}
    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    machine["wall_s"] = round(time.perf_counter() - t0)
    machine["argv"] = sys.argv[1:]
    (out / "machine.json").write_text(json.dumps(machine, indent=2) + "\n")
    write_readme(out, exchanges, pss, machine, sys.argv[1:])
    print(f"[bench-cluster] wrote {out}/README.md in {machine['wall_s']} s", flush=True)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as exc:
        print(f"backupsgd: error: {exc}", file=sys.stderr)
        sys.exit(2)
