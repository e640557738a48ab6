"""`make bench-cluster`: the exchange and parameter-server benchmarks across namespace nodes with shaped links,
the ping-pong that sets the simulator's network and its predictions, and time to target across nodes.

    python -m backupsgd.cluster.bench --out results/cluster      (as root; 15-20 minutes on 2 loaded cores)
    python -m backupsgd.cluster.bench --only pingpong,target     (some of them; the README keeps the rest)

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


def exchange(rate: str, out: Path, sizes: str, repeats: int, iters: int, timeout: float, kind: str = "exchange",
             extra: tuple[str, ...] = (), name: str = NAME) -> dict:
    spec = ClusterSpec(nodes=2, slots=2, bandwidth=rate, name=name)
    path = out / f"{kind}-{rate}.json"
    args = ["-n", "4", sys.executable, "-m", "backupsgd", "bench", "exchange", "--sizes", sizes,
            "--repeats", str(repeats), "--iters", str(iters), *extra, "--json", str(path)]
    with running_cluster(spec):
        _job(spec, args, timeout)
    data = json.loads(path.read_text())
    data["cluster"] = {"nodes": 2, "slots": 2, "bandwidth": rate}
    data["command"] = "backupsgd cluster run -- " + shlex.join(args[:2] + ["python"] + args[3:])
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def ps(rate: str, out: Path, workers: list[int], servers: list[int], size_mb: float, steps: int, repeats: int,
       timeout: float, name: str = NAME) -> dict:
    spec = ClusterSpec(nodes=max(workers) + max(servers), slots=1, bandwidth=rate, name=name)
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


def reducers(rate: str, out: Path, args: argparse.Namespace) -> dict:
    """The exchange without Horovod, `--reducer-rounds` times, each on a fresh cluster: one run on a shared
    machine can put any reducer first, so the default is chosen from rounds that agree."""
    rounds = []
    for _ in range(args.reducer_rounds):
        data = exchange(rate, out, args.reducer_sizes, args.reducer_repeats, args.iters, args.timeout, "reducers",
                        ("--no-horovod", "--straggler-delay", "0", "--auto"), args.name)
        rounds.append(data["rows"])
    data["rounds"] = rounds
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


def _load_note(data: dict) -> str:
    load, took = data.get("load_average"), (f" Took {data['wall_s']} s." if "wall_s" in data else "")
    return took if not load else (f" Load average (1, 5, 15 min) before: {load['before']}, after: {load['after']} "
                                  f"(on {os.cpu_count()} cores).{took}")


def write_readme(out: Path, found: dict[str, dict[str, dict]], machine: dict, argv: list[str]) -> None:
    """README.md from every benchmark's JSON in `out` (`found`: kind -> rate -> data)."""
    from backupsgd.bench import format_rows
    from backupsgd.cluster import calibrate, target
    from backupsgd.cluster.topology import parse_rate

    parts = [
        "# A cluster on one machine: exchange and parameter-server benchmarks across shaped links",
        "",
        "Written by `python -m backupsgd.cluster.bench --out results/cluster` (what `make bench-cluster` runs, as "
        "root; `--only KIND,...` reruns some steps and keeps the others' JSON). Each section names the command "
        f"of its own runs. This README was last written by `... bench {shlex.join(argv)}`.",
        "",
        "Each node is a network namespace joined to a bridge by a veth pair shaped with `tbf` at the link rate "
        "both ways (`backupsgd cluster up`); Open MPI runs one daemon per node over TCP on the shaped `eth0` "
        "(`backupsgd cluster run`). No added latency: this kernel has no `netem`.",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores, Linux {machine['kernel']}. Each section gives the "
        "load average before and after its own runs; the machine was shared with other engineers' MPI jobs.",
        "",
        "**What these numbers do not show.** All nodes share these cores: every rank, every daemon and the "
        "kernel's forwarding of every packet. On this machine one TCP stream between two namespaces reached "
        "about 9.5 Gbit/s unshaped, so at 10 Gbit/s the CPU, not the link, is the limit, and the 10 Gbit/s "
        "rows measure the machine more than the network. When the load average is near or over the core "
        "count, other jobs shared the cores during the run and the times are inflated by an unknown amount; "
        "compare columns of one run (they were interleaved), not runs. Medians over few repeats.",
    ]
    for rate, data in found.get("exchange", {}).items():
        parts += ["", f"## Exchange across 2 nodes x 2 ranks at {rate} (`exchange-{rate}.json`)", "",
                  f"`{data['command']}`{_load_note(data)}", "",
                  "Reducers: dense (allreduce, non-members add zeros), members (only the N members reduce), shm "
                  "(within a node in shared memory, across nodes over the link: hierarchical), horovod.", "",
                  "```", format_rows(data["rows"], data.get("straggler")), "```"]
    for rate, data in found.get("ps", {}).items():
        parts += ["", f"## Parameter server vs allreduce at {rate}, one rank per node (`ps-{rate}.json`, "
                      f"`ps-{rate}.png`)", "", f"`{data['command']}`{_load_note(data)}", "",
                  "Servers are ranks 0..k-1 on nodes of their own; the allreduce runs among the W workers alone. "
                  f"M = {data['rows'][0]['size_mib']:g} MiB, medians of {data['repeats']} repeats of "
                  f"{data['steps']} steps; exchange only, no compute. Bounds are the link time alone at the "
                  "shaped rate: ps-sync's step is a push phase (W x M/k into each server) then a pull phase (the "
                  "same out), so 2 W M/k; a worker pushing its next gradient while the server still sends to "
                  "others overlaps the two a little, so a ratio can dip just under 1. The allreduce's bound is a "
                  "ring's 2(W-1)/W x M per rank at full duplex; Open MPI's algorithm runs its exchanges half "
                  "duplex over TCP (see the predictions below).", "",
                  _ps_table(data, parse_rate(rate))]
    for rate, data in found.get("reducers", {}).items():
        parts += ["", f"## The reducers across 2 nodes x 2 ranks at {rate}, without Horovod (`reducers-{rate}.json`)",
                  "", f"`{data['command']}`{_load_note(data)}", "",
                  "The exchange benchmark again, without Horovod's columns (its background thread polls every "
                  "1 ms and slows the others where ranks share cores) and without the straggler step: the "
                  "numbers the default reducer is chosen from.", "",
                  *(line for i, rows in enumerate(data.get("rounds", [data["rows"]]))
                    for line in (f"Round {i + 1}:", "", "```", format_rows(rows, None), "```", ""))]
    pps = found.get("pingpong", {})
    if pps:
        parts += ["", "## The simulator's network, measured (`pingpong-RATE.json`)", "",
                  *(f"- {calibrate.pingpong_line(pp)}{_load_note(pp)}" for pp in pps.values())]
        for rate, pp in pps.items():
            if rate in found.get("ps", {}):
                parts += ["", f"### Predicted against measured: parameter server and allreduce at {rate}", "",
                          "`backupsgd simulate`'s step time with no compute and no straggler (its exchange alone), "
                          f"network: --bandwidth-gbps {parse_rate(rate) / 1e9:g} --latency-us "
                          f"{pp['latency_us']:.1f}, and --duplex {pp['duplex']:.2f} where named; the allreduce as the "
                          "textbook ring at full duplex, and as Open MPI runs it over TCP (`--allreduce openmpi`, "
                          "backupsgd/sim/openmpi.py: coll/tuned's Rabenseifner for these sizes, whose exchanges "
                          "with one peer go one way at a time behind ob1's rendezvous). ✗: off by more "
                          f"than {calibrate.WITHIN:.0%}.", "", calibrate.ps_table(found["ps"][rate], pp)]
            for kind in ("exchange", "reducers"):
                if rate in found.get(kind, {}):
                    parts += ["", f"### Predicted against measured: `{kind}-{rate}.json` (2 nodes x 2 ranks)", "",
                              calibrate.exchange_table(found[kind][rate], pp)]
    for rate, data in found.get("target", {}).items():
        parts += ["", f"## Time to target under stragglers across nodes at {rate} (`target-{rate}.json`)", "",
                  f"`{data['command']}`{_load_note(data)}", "",
                  f"W = {data['workers']} workers on {data['cluster']['nodes']} nodes x {data['cluster']['slots']} "
                  f"slots (ps-backup: + 1 server rank, rank 0), straggler `{data['straggler']}`, {data['steps']} "
                  "steps, seeds as listed. Time to target: rank 0's clock from the first step to the first "
                  "evaluation at or above it. sim step: `backupsgd simulate`'s mean step for the same mode, seed "
                  "and straggler, the run's median measured compute time, and the calibrated network above with "
                  f"{data['cluster']['slots']} ranks per node (`--ranks-per-node`); network only, then with a "
                  "per-step overhead (`--step-overhead-ms`: the engine, Python and the shared cores) fitted per "
                  "mode on the runs of seeds 0-1, so the other seeds are predicted out of sample.", "",
                  target.table(data, pps.get(rate))]
    readme = out / "README.md"
    notes = readme.read_text().split(FINDINGS, 1)[1] if readme.exists() and FINDINGS in readme.read_text() else ""
    (out / "README.md").write_text("\n".join(parts) + "\n\n" + FINDINGS + (notes or "\n"))


FINDINGS = "## What the numbers say (written by hand; kept when the tables above are rewritten)\n"
KINDS = ("exchange", "reducers", "ps", "pingpong", "target")


def _list(text: str, kind=int) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{text!r} is not a comma-separated list") from None


def _found(out: Path) -> dict[str, dict[str, dict]]:
    found: dict[str, dict[str, dict]] = {}
    for kind in KINDS:
        for path in sorted(out.glob(f"{kind}-*.json")):
            found.setdefault(kind, {})[path.stem.split("-", 1)[1]] = json.loads(path.read_text())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/cluster")
    parser.add_argument("--only", default=",".join(KINDS), help=f"Comma list of {', '.join(KINDS)}.")
    parser.add_argument("--rates", default="1gbit,10gbit", help="Link rates for the exchange benchmark.")
    parser.add_argument("--sizes", default="1,16", help="Exchange buffer sizes, MiB.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--reducer-sizes", default="4,16", help="Buffer sizes, MiB, of the reducers' comparison.")
    parser.add_argument("--reducer-repeats", type=int, default=5)
    parser.add_argument("--reducer-rounds", type=int, default=3)
    # 1gbit only: at 10gbit the CPU, not the link, sets the time on this machine (see the README)
    parser.add_argument("--reducer-rates", default="1gbit", help="Link rates for the reducers' comparison.")
    parser.add_argument("--ps-rates", default="1gbit", help="Link rates for the parameter-server benchmark.")
    parser.add_argument("--ps-workers", default="2,4,8")
    parser.add_argument("--ps-servers", default="1,2,4")
    parser.add_argument("--ps-size-mb", type=float, default=4.0)
    parser.add_argument("--ps-steps", type=int, default=5)
    parser.add_argument("--pingpong-rates", default="1gbit,10gbit", help="Link rates for the ping-pong.")
    parser.add_argument("--target-rate", default="1gbit")
    parser.add_argument("--target-workers", type=int, default=4)
    parser.add_argument("--target-seeds", default="0,1,2")
    parser.add_argument("--target-steps", type=int, default=150)
    parser.add_argument("--target-straggler", default="exp:mean=0.01")
    parser.add_argument("--target", type=float, default=0.9, help="Target test accuracy.")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds per MPI job.")
    parser.add_argument("--name", default=NAME, help="Cluster name (namespaces <name>-n0, ...): one of your own "
                                                     "where someone else's bench may be running.")
    parser.add_argument("--readme-only", action="store_true", help="Rewrite README.md from the JSON in --out.")
    args = parser.parse_args()
    only = _list(args.only, str)
    if unknown := set(only) - set(KINDS):
        raise ConfigError(f"--only {args.only}: unknown {', '.join(sorted(unknown))}; use some of {', '.join(KINDS)}")
    # the jobs import this checkout's backupsgd, whatever is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    machine_path = out / "machine.json"
    if args.readme_only:
        saved = json.loads(machine_path.read_text())
        write_readme(out, _found(out), saved, saved["argv"])
        return

    def timed(kind: str, rate: str, make) -> None:
        before, t0 = [round(x, 2) for x in os.getloadavg()], time.perf_counter()
        data = make()
        data["load_average"] = {"before": before, "after": [round(x, 2) for x in os.getloadavg()]}
        data["wall_s"] = round(time.perf_counter() - t0)
        (out / f"{kind}-{rate}.json").write_text(json.dumps(data, indent=2) + "\n")
        print(f"[bench-cluster] {kind} {rate} done in {data['wall_s']} s", flush=True)

    from backupsgd.cluster import calibrate, target

    t0 = time.perf_counter()
    if "exchange" in only:
        for rate in _list(args.rates, str):
            timed("exchange", rate, lambda: exchange(rate, out, args.sizes, args.repeats, args.iters, args.timeout,
                                                     name=args.name))
    if "reducers" in only:
        for rate in _list(args.reducer_rates, str):
            timed("reducers", rate, lambda: reducers(rate, out, args))
    if "ps" in only:
        for rate in _list(args.ps_rates, str):
            timed("ps", rate, lambda: ps(rate, out, _list(args.ps_workers), _list(args.ps_servers), args.ps_size_mb,
                                         args.ps_steps, args.repeats, args.timeout, args.name))
    if "pingpong" in only:
        for rate in _list(args.pingpong_rates, str):
            timed("pingpong", rate, lambda: calibrate.pingpong(rate, out, args.name, args.timeout))
    if "target" in only:
        timed("target", args.target_rate,
              lambda: target.measure(args.target_rate, out, args.name, args.target_workers, _list(args.target_seeds),
                                     args.target_steps, args.target_straggler, args.target, args.timeout))
    machine["wall_s"] = round(time.perf_counter() - t0)
    machine["argv"] = sys.argv[1:]
    machine_path.write_text(json.dumps(machine, indent=2) + "\n")
    write_readme(out, _found(out), machine, sys.argv[1:])
    print(f"[bench-cluster] wrote {out}/README.md in {machine['wall_s']} s", flush=True)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as exc:
        print(f"backupsgd: error: {exc}", file=sys.stderr)
        sys.exit(2)
