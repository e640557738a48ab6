"""Sweep grid files: a TOML `[sweep]` table expanded into the list of runs it names, validated up front.

Format (documented with an example at the top of launch/experiments/smoke.toml):

    [sweep]
    ranks = 5                  # P: `mpirun -n P` (a list sweeps it)
    timeout_s = 600            # per run: the run's whole process group is killed after this
    mode = ["sync", "backup"]  # any `backupsgd train` option: a list is swept, a scalar is fixed
    backups = [0, 1, 2]         # or "auto", "auto:rule=dbw": N chosen per step (backup mode only)
    seed = [0, 1, 2, 3, 4]
    order = "shuffled"         # within a seed, runs in an order drawn from the seed ("listed": as written)

    [[sweep.variant]]          # optional: each variant's keys override [sweep]'s; the runs are the
    mode = "backup"            # union of every variant's Cartesian product (none: [sweep] alone)
    backups = [1, 2]

A mode that waits for every worker refuses backups > 0 (`sync`, and the other full modes): for such
a mode the grid collapses `backups` to 0 instead of failing, and the duplicates run once; `auto` too.

The runs go seed by seed (every configuration of seed 0, then of seed 1, ...), so a slow drift of the machine's
load hits every configuration alike; within a seed they go in an order drawn from the seed (a randomized block
design), so that no configuration always runs first. In the written order the first-listed configuration
(`auto`, in launch/experiments/auto-*.toml) ran first in every seed, and this machine's first ~10 minutes of a
session ran slower than the rest: a bias against it that no number of seeds averages away.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backupsgd.errors import ConfigError
from backupsgd.sweep.script import SCRIPT_KEYS, check_script_point

LAUNCH_KEYS = ("ranks",)  # vary per run, but are mpirun's, not train's
SWEEP_KEYS = ("timeout_s", "order")  # one value for the whole sweep
ORDERS = ("shuffled", "listed")  # within a seed: drawn from the seed (the default), or as the grid file lists them
OWNED_BY_SWEEP = ("out", "progress")  # the sweep sets these itself for every run
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RunSpec:
    """One grid point: what `mpirun -n ranks backupsgd train` gets, and the directory name it runs in."""

    name: str  # deterministic from the options: the same point always lands in the same directory
    ranks: int  # P
    options: dict[str, Any]  # train options as given in the grid (defaults left to train)


@dataclass(frozen=True)
class Grid:
    runs: list[RunSpec]  # seed-major: every configuration of seed 0, then of seed 1, ... (see `order`)
    timeout_s: float
    collapsed: int  # points dropped as duplicates after a full mode's backups collapsed to 0


def load_grid(path: str | Path) -> Grid:
    """Parse and validate a grid file; any problem raises ConfigError naming the fix."""
    from backupsgd.config import read_toml  # lazy: keeps `backupsgd --help` light

    path = Path(path)
    raw = read_toml(path, "grid file", "pass an existing .toml file to backupsgd sweep")
    extra = sorted(set(raw) - {"sweep"})
    if extra or not isinstance(raw.get("sweep"), dict):
        what = f"top-level key {extra[0]!r}" if extra else "no [sweep] table"
        raise ConfigError(f"grid file {path}: {what}; put every key under one [sweep] table")
    table = {k.replace("-", "_"): v for k, v in raw["sweep"].items()}
    variants = table.pop("variant", [{}])
    if not isinstance(variants, list) or not variants or not all(isinstance(v, dict) for v in variants):
        raise ConfigError(f"grid file {path}: write variants as [[sweep.variant]] tables, one or more")
    timeout_s = table.pop("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise ConfigError(f"grid file {path}: timeout_s must be a number of seconds > 0, got {timeout_s!r}")
    order = table.pop("order", ORDERS[0])
    if order not in ORDERS:
        raise ConfigError(f"grid file {path}: order = {order!r}; use order = \"shuffled\" (the default: within a "
                          f"seed, an order drawn from the seed) or order = \"listed\" (as the file lists them)")
    points: dict[str, RunSpec] = {}
    expanded = 0
    for variant in variants:
        variant = {k.replace("-", "_"): v for k, v in variant.items()}
        for key in SWEEP_KEYS:
            if key in variant:
                raise ConfigError(f"grid file {path}: {key} belongs in [sweep], not in a [[sweep.variant]]")
        for values in _product(path, table | variant):
            expanded += 1
            spec = _point(path, values)
            points.setdefault(spec.name, spec)
    return Grid(_seed_major(list(points.values()), order), float(timeout_s), expanded - len(points))


def _seed_major(listed: list[RunSpec], order: str) -> list[RunSpec]:
    """The runs seed by seed; within a seed as listed, or shuffled by a generator seeded from the seed (the same
    order every time the grid loads, so an interrupted sweep resumes where it was)."""
    by_seed: dict[Any, list[RunSpec]] = {}
    for spec in listed:
        by_seed.setdefault(spec.options.get("seed", 0), []).append(spec)
    runs = []
    for seed in sorted(by_seed):
        block = by_seed[seed]
        if order == "shuffled":
            random.Random(f"backupsgd sweep order, seed {seed}").shuffle(block)
        runs.extend(block)
    return runs


def _product(path: Path, table: dict[str, Any]) -> list[dict[str, Any]]:
    from backupsgd.config import option_names  # lazy: keeps `backupsgd --help` light

    known = set(option_names()) - set(OWNED_BY_SWEEP)
    for key, value in table.items():
        if key in OWNED_BY_SWEEP:
            raise ConfigError(f"grid file {path}: {key!r} is set by the sweep for every run; remove it "
                              "(runs go under `backupsgd sweep --out DIR`)")
        if key not in known and key not in LAUNCH_KEYS and key not in SCRIPT_KEYS:
            raise ConfigError(f"grid file {path}: unknown key {key!r}; known keys: "
                              f"{', '.join(sorted(known | set(LAUNCH_KEYS) | set(SWEEP_KEYS)))}")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (dict, list)):
                raise ConfigError(f"grid file {path}: {key} must be a scalar or a list of scalars")
        if isinstance(value, list) and not value:
            raise ConfigError(f"grid file {path}: {key} = [] sweeps nothing; give it one or more values")
    if "ranks" not in table:
        raise ConfigError(f"grid file {path}: no ranks; add e.g. ranks = 5 to [sweep] (the mpirun -n of every run)")
    keys = list(table)
    lists = [table[k] if isinstance(table[k], list) else [table[k]] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def _takes_backups(mode: str) -> bool:
    """Whether the configuration accepts b > 0 for this mode: asked of the config, the one authority."""
    from backupsgd.config import build_config

    try:
        build_config({"mode": mode, "backups": 1})
    except ConfigError:
        return False
    return True


def _point(path: Path, values: dict[str, Any]) -> RunSpec:
    """Validate one point as `train` would (ranks included) and name its directory."""
    from backupsgd.config import build_config

    values = dict(values)
    ranks = values.pop("ranks")
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ConfigError(f"grid file {path}: ranks must be an integer >= 1, got {ranks!r}")
    if values.get("backups") and "mode" in values and not _takes_backups(values["mode"]):
        values["backups"] = 0  # a full mode waits for everyone: its one point is b = 0
    if "script" in values:  # a user's script, given its settings through the environment
        return RunSpec(_name(ranks, check_script_point(path, ranks, values), values), ranks, values)
    try:
        config = build_config(values)
        config.check_world(ranks)
    except ConfigError as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(values.items()))
        raise ConfigError(f"grid file {path}: the point ranks={ranks}, {shown} is invalid: {exc}") from None
    flat = config.flat()
    return RunSpec(_name(ranks, flat, values), ranks, values)


def _name(ranks: int, flat: dict[str, Any], given: dict[str, Any]) -> str:
    from backupsgd.auto_spec import backups_slug  # `auto:max=2` names a directory as auto_max2

    # The digest covers only the options the grid gives, so a new train option with a default
    # (added later) does not rename, and thereby rerun, every finished run of an old sweep.
    digest = hashlib.sha1(json.dumps({"ranks": ranks, **given}, sort_keys=True).encode()).hexdigest()[:8]
    straggler = re.sub(r"[^A-Za-z0-9.=+_-]+", "_", str(flat["straggler"]))[:40]
    return f"{flat['mode']}-b{backups_slug(flat['backups'])}-n{ranks}-{straggler}-s{flat['seed']}-{digest}"


def run_toml(spec: RunSpec) -> str:
    """The flat train config file of one run (progress off: the sweep shows its own bar)."""
    lines = [f"# generated by backupsgd sweep for run {spec.name}; mpirun -n {spec.ranks}"]
    for key, value in {**spec.options, "progress": False}.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
