"""Grid points that run a user's script (`script = "examples/..."`) instead of `backupsgd train`.

The script imports `backupsgd.torch`; the sweep hands it each point's settings through the environment that
`backupsgd.torch.init()` reads (mode, b, seed, straggler, reducer, run directory), so the same unchanged
script runs sync, backup with any b, and the real horovod.torch baseline (mode = "horovod"), and writes the
run directory the report reads.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from backupsgd.errors import ConfigError

SCRIPT_KEYS = ("script", "script_args")  # which script, and its own command-line arguments (one string)
# What a script point may set, and the environment variable backupsgd.torch reads it from.
SCRIPT_SETTINGS = {"mode": "BACKUPSGD_MODE", "backups": "BACKUPSGD_BACKUPS", "seed": "BACKUPSGD_SEED",
                   "straggler": "BACKUPSGD_STRAGGLER", "reducer": "BACKUPSGD_REDUCER",
                   "lag_limit": "BACKUPSGD_LAG_LIMIT", "stall_timeout": "BACKUPSGD_STALL_TIMEOUT"}
SCRIPT_MODES = ("sync", "backup", "horovod")


def check_script_point(path: Path, ranks: int, values: dict[str, Any]) -> dict[str, Any]:
    """Validate one script point; returns the train-like flat view that names its directory."""
    from backupsgd.auto_spec import is_auto, parse_auto
    from backupsgd.config import REDUCERS
    from backupsgd.straggler import parse_straggler

    where = f"grid file {path}: the point ranks={ranks}, " + ", ".join(f"{k}={v!r}" for k, v in sorted(values.items()))
    unknown = sorted(set(values) - set(SCRIPT_KEYS) - set(SCRIPT_SETTINGS))
    if unknown:
        raise ConfigError(f"grid file {path}: {', '.join(unknown)} is a backupsgd train option; a script point takes "
                          f"only {', '.join(sorted(SCRIPT_SETTINGS))}: pass the script's own options in script_args")
    script = Path(str(values["script"]))
    if not script.is_file():
        raise ConfigError(f"grid file {path}: script {script} not found (paths are relative to the directory "
                          "backupsgd sweep runs in)")
    mode, backups = values.get("mode", "backup"), values.get("backups", 0)
    if mode not in SCRIPT_MODES:
        raise ConfigError(f"{where} is invalid: a script runs in mode {', '.join(SCRIPT_MODES)}, not {mode!r}")
    if isinstance(backups, str) and is_auto(backups):  # BACKUPSGD_BACKUPS=auto...: backup mode, bounds within P
        if mode != "backup":
            raise ConfigError(f"{where} is invalid: backups = {backups!r} chooses N per step in mode backup only")
        try:
            parse_auto(backups).bounds(ranks)
        except ConfigError as exc:
            raise ConfigError(f"{where} is invalid: {exc}") from None
    elif isinstance(backups, bool) or not isinstance(backups, int) or not 0 <= backups < ranks:
        raise ConfigError(f"{where} is invalid: backups must be an integer with 0 <= b < ranks, or auto[:...]")
    if values.get("reducer", "dense") not in REDUCERS:
        raise ConfigError(f"{where} is invalid: unknown reducer; use one of {', '.join(REDUCERS)}")
    seed = values.get("seed", 0)
    straggler = str(values.get("straggler", "none"))
    parse_straggler(straggler, seed).check_world(ranks)
    shlex.split(str(values.get("script_args", "")))  # an unbalanced quote fails here, not in the run
    return {"mode": mode, "backups": backups, "straggler": straggler, "seed": seed}


def script_command(options: dict[str, Any]) -> list[str]:
    """`python script args...` (after `mpirun -n P -x ...`)."""
    return [str(Path(options["script"]).resolve()), *shlex.split(str(options.get("script_args", "")))]


def script_env(options: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """The BACKUPSGD_* variables of one point; each is passed to every rank with mpirun -x."""
    env = {var: str(options[key]) for key, var in SCRIPT_SETTINGS.items() if key in options}
    env["BACKUPSGD_RUN_DIR"] = str(run_dir)
    return env
