"""The cluster's network: one namespace per node, each joined by a tbf-shaped veth pair to a bridge.

Node i is namespace `<name>-n<i>` with `eth0` at 198.18.0.<i+1>/24 (198.18.0.0/15 is set aside for
network benchmarks, so it can clash with nothing real); the bridge `br0` sits in a namespace of its
own, `<name>-br`, so nothing is ever added to the host's namespace and no traffic leaves the
namespaces made here. Both ends of every link are shaped (the node's egress and the bridge port's
egress towards the node), as a full-duplex switch port at RATE each way: a node can neither send
nor receive faster than its link, which is what a parameter server's ingress needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from backupsgd.errors import ConfigError

STATE_ROOT = Path("/run/backupsgd-cluster")  # tmpfs: gone after a reboot, as the namespaces are
NETNS_ETC = Path("/etc/netns")  # `ip netns exec NS` bind-mounts /etc/netns/NS/hosts over /etc/hosts
SUBNET = "198.18.0"
MAX_NODES = 250
DEFAULT_NAME = "bsgd"
_UNITS = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(kbit|mbit|gbit|tbit)$")


def parse_rate(text: str) -> float:
    """'1gbit' -> 1e9 bits/s; 'unlimited' -> 0 (no shaping). tc's own words, decimal units."""
    text = text.strip().lower()
    if text == "unlimited":
        return 0.0
    m = _RATE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"bad bandwidth {text!r}; give a rate such as 100mbit, 1gbit, 2.5gbit or 10gbit "
                          "(or 'unlimited' for no shaping)")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class ClusterSpec:
    nodes: int = 2  # K namespaces, each one node with its own host name n0..n<K-1>
    slots: int = 2  # ranks per node in the hostfile (mpirun fills n0's slots first)
    bandwidth: str = "10gbit"  # each node's link rate, both ways (tbf); 'unlimited' shapes nothing
    name: str = DEFAULT_NAME  # prefix of the namespaces and key of the state file; tests use their own

    def __post_init__(self) -> None:
        if not isinstance(self.nodes, int) or not 1 <= self.nodes <= MAX_NODES:
            raise ConfigError(f"nodes must be an integer from 1 to {MAX_NODES}, got {self.nodes!r}; "
                              "set --nodes 2 or more for a multi-node job")
        if not isinstance(self.slots, int) or self.slots < 1:
            raise ConfigError(f"slots must be an integer >= 1, got {self.slots!r}; set --slots 1 or more")
        parse_rate(self.bandwidth)
        # the veth peer in the bridge namespace is named v<i>; the name only prefixes namespaces and a directory
        if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", self.name):
            raise ConfigError(f"bad cluster name {self.name!r}; use up to 16 lower-case letters and digits")

    @property
    def bridge_ns(self) -> str:
        return f"{self.name}-br"

    def node_ns(self, i: int) -> str:
        return f"{self.name}-n{i}"

    def host(self, i: int) -> str:
        return f"n{i}"

    def address(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def namespaces(self) -> list[str]:
        return [self.bridge_ns] + [self.node_ns(i) for i in range(self.nodes)]


def down_command_line(name: str) -> str:
    return "backupsgd cluster down" + ("" if name == DEFAULT_NAME else f" --name {name}")


def state_dir(name: str = DEFAULT_NAME) -> Path:
    return STATE_ROOT / name


def read_state(name: str = DEFAULT_NAME) -> ClusterSpec | None:
    """The spec of the cluster that is up under `name`, or None."""
    path = state_dir(name) / "state.json"
    if not path.exists():
        return None
    return ClusterSpec(**json.loads(path.read_text()))


def check_host() -> None:
    """Namespaces and qdiscs need root (CAP_NET_ADMIN) and iproute2; say which is missing and how to fix it."""
    if os.geteuid() != 0:
        raise ConfigError("the cluster's network namespaces need root (CAP_NET_ADMIN); run it as root, "
                          "e.g. sudo backupsgd cluster ...")
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            raise ConfigError(f"'{tool}' not found on PATH; install it (apt-get install {package})")


def _sh(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")


def existing_namespaces() -> set[str]:
    proc = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}


def _shape(ns: str, dev: str, bits_per_s: float) -> None:
    # burst: 1 ms of traffic, at least 256 KiB; tbf splits a GSO super-packet larger than that,
    # and with a smaller burst the 10 Gbit/s link fell short of its rate on this kernel.
    burst = max(256 * 1024, int(bits_per_s / 8 / 1000))
    _sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{int(bits_per_s)}bit",
        "burst", str(burst), "latency", "100ms")


def up(spec: ClusterSpec) -> bool:
    """Create the cluster; False if the same one is already up. Half-made state is removed on failure."""
    check_host()
    current = read_state(spec.name)
    if current is not None:
        if current == spec and set(spec.namespaces()) <= existing_namespaces():
            return False
        raise ConfigError(f"a cluster '{spec.name}' with nodes={current.nodes} slots={current.slots} "
                          f"bandwidth={current.bandwidth} is up; run `{down_command_line(spec.name)}` first")
    clash = set(spec.namespaces()) & existing_namespaces()
    if clash:
        raise ConfigError(f"namespaces {', '.join(sorted(clash))} exist without a cluster state file "
                          f"(left by a killed `cluster up`?); run `{down_command_line(spec.name)}` to remove them")
    try:
        _build(spec)
    except BaseException:
        down(spec.name)
        raise
    return True


def _build(spec: ClusterSpec) -> None:
    rate = parse_rate(spec.bandwidth)
    hosts = "127.0.0.1 localhost\n" + "".join(f"{spec.address(i)} {spec.host(i)}\n" for i in range(spec.nodes))
    # State first: a `down` after a failure half-way finds what to remove.
    state = state_dir(spec.name)
    state.mkdir(parents=True, exist_ok=True)
    (state / "state.json").write_text(json.dumps(asdict(spec)) + "\n")
    br = spec.bridge_ns
    _sh("ip", "netns", "add", br)
    _sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
    _sh("ip", "-n", br, "link", "set", "br0", "up")
    for i in range(spec.nodes):
        ns = spec.node_ns(i)
        _sh("ip", "netns", "add", ns)
        etc = NETNS_ETC / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts)
        _sh("ip", "-n", br, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _sh("ip", "-n", br, "link", "set", f"v{i}", "master", "br0", "up")
        _sh("ip", "-n", ns, "addr", "add", f"{spec.address(i)}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        if rate:
            _shape(ns, "eth0", rate)
            _shape(br, f"v{i}", rate)


def _kill_inside(ns: str) -> None:
    # A namespace lives on while a process is in it (and its veth with it): end them first.
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for pid in proc.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def down(name: str = DEFAULT_NAME) -> list[str]:
    """Remove the cluster `name`: its processes, namespaces (links and bridge go with them), /etc/netns
    entries and state directory. Returns the namespaces removed ([] if nothing was up)."""
    check_host()
    spec = read_state(name)
    prefix = f"{name}-"
    # By prefix as well as by the state file, so namespaces left by a `cluster up` killed before it
    # wrote its state are found too; the prefix is ours (ClusterSpec.name).
    ours = re.compile(rf"^{re.escape(prefix)}(br|n\d+)$")
    found = sorted(ns for ns in existing_namespaces() if ours.match(ns))
    if spec is not None:
        found = sorted(set(found) | (set(spec.namespaces()) & existing_namespaces()))
    for ns in found:
        _kill_inside(ns)
    for ns in found:
        _sh("ip", "netns", "del", ns)
    for etc in NETNS_ETC.glob(f"{prefix}*") if NETNS_ETC.exists() else []:
        if ours.match(etc.name):
            shutil.rmtree(etc, ignore_errors=True)
    if NETNS_ETC.exists() and not any(NETNS_ETC.iterdir()):
        NETNS_ETC.rmdir()  # ip netns exec does not need it; leave /etc as it was
    shutil.rmtree(state_dir(name), ignore_errors=True)
    if STATE_ROOT.exists() and not any(STATE_ROOT.iterdir()):
        STATE_ROOT.rmdir()
    return found
