"""The experiment configuration: typed dataclasses filled from defaults, a TOML file and CLI overrides."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backupsgd.auto_spec import is_auto, parse_auto
from backupsgd.errors import ConfigError

MODES = ("sync", "backup", "horovod", "ps-sync", "ps-backup", "ps-async")
PS_MODES = ("ps-sync", "ps-backup", "ps-async")  # ranks 0..servers-1 hold parameter shards, the rest compute
# The datasets each model runs on; the first is its default. Models take their input shape from the dataset.
MODELS = {
    "mlp": ("digits",),
    "cnn": ("digits", "fashion-mnist", "mnist"),
    "logreg": ("synthetic",),
    "resnet": ("cifar", "fashion-mnist", "mnist"),
    "gpt": ("pydocs",),  # a byte-level language model
}
DATASET_NAMES = tuple(dict.fromkeys(d for ds in MODELS.values() for d in ds))
REDUCERS = ("dense", "members", "horovod", "shm", "auto")


@dataclass
class ModeConfig:
    mode: str = "backup"  # how gradients are aggregated: sync (all P) or backup (first N of P)
    backups: int | str = 0  # b: the slowest b workers of each step are dropped; N = P - b; or "auto[:min=A,max=B,
    # rule=progress|dbw]": N chosen every step from the arrivals and the gradient noise (backupsgd/adaptive.py)
    servers: int | None = None  # k parameter-server ranks in the ps-* modes (None there means 1); unset otherwise

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; use --mode with one of {', '.join(MODES)}")
        if isinstance(self.backups, str) and self.backups.strip().lstrip("-").isdigit():  # the command line gives text
            self.backups = int(self.backups)
        if isinstance(self.backups, str) and is_auto(self.backups):
            parse_auto(self.backups)  # a bad key or bound is refused here, naming the fix
            if self.mode != "backup":
                raise ConfigError(f"--backups auto chooses N per step in --mode backup only (its vote decides N); "
                                  f"use --mode backup, or a number of backups for --mode {self.mode}")
            return
        if isinstance(self.backups, bool) or not isinstance(self.backups, int) or self.backups < 0:
            raise ConfigError(f"backups must be an integer >= 0 or auto[:min=A,max=B], got {self.backups!r}; "
                              "set --backups 0 or more, or --backups auto")
        if self.mode == "sync" and self.backups:
            raise ConfigError("--mode sync waits for every worker; use --backups 0, or --mode backup for b > 0")
        if self.mode == "horovod" and self.backups:
            raise ConfigError("--mode horovod (Horovod's full sync) waits for every worker; use --backups 0, "
                              "or --mode backup --reducer horovod for b > 0")
        if self.mode in ("ps-sync", "ps-async") and self.backups:
            raise ConfigError(f"--mode {self.mode} drops no worker; use --backups 0, or --mode ps-backup for b > 0")
        if self.servers is not None and self.mode not in PS_MODES:
            raise ConfigError(f"--servers only applies to the parameter-server modes; drop --servers, "
                              f"or use --mode with one of {', '.join(PS_MODES)}")
        if self.mode in PS_MODES:
            self.servers = 1 if self.servers is None else self.servers
            if not isinstance(self.servers, int) or self.servers < 1:
                raise ConfigError(f"servers must be an integer >= 1, got {self.servers!r}; set --servers 1 or more")


@dataclass
class WorkloadConfig:
    model: str = "mlp"  # mlp (digits) | cnn (digits, fashion-mnist, mnist) | logreg (synthetic) | resnet (cifar,
    # fashion-mnist, mnist) | gpt (pydocs)
    dataset: str = ""  # empty picks the model's first dataset
    data_dir: str = ""  # directory holding a file-backed dataset's files; empty: the package's path, then the cache
    batch_size: int = 32  # per-worker minibatch
    lr: float = 0.1  # learning rate of the optimizer
    optimizer: str = "sgd"  # any torch.optim optimizer, by case-insensitive name (sgd, adam, adamw, rmsprop, ...)
    momentum: float = 0.9  # for optimizers that take momentum (sgd, rmsprop); 0 disables
    steps: int = 200  # updates applied
    seed: int = 0  # seeds model init, minibatch sampling and straggler draws
    eval_every: int = 50  # steps between test evaluations (0: only at the end)
    threads: int = 1  # torch intra-op threads per rank (ranks usually share cores)

    def __post_init__(self) -> None:
        self._check_model_and_dataset()
        for name in ("batch_size", "steps", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}; fix --{name.replace('_', '-')}")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ConfigError(f"eval_every must be an integer >= 0, got {self.eval_every!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("lr", "momentum"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}; fix --{name}")
        from backupsgd.optim import optimizer_class  # torch import kept out of config parsing

        optimizer_class(self.optimizer)

    def _check_model_and_dataset(self) -> None:
        if ":" in self.model or ":" in self.dataset:  # a user's own, by import path (backupsgd.plugins)
            from backupsgd.plugins import load_factory

            if ":" not in self.model:
                raise ConfigError(f"dataset {self.dataset!r} is a user's: give a model for it by import path too "
                                  "(--model pkg.module:factory); the built-in models are shaped for built-in data")
            load_factory(self.model, "model")
            if not self.dataset:
                raise ConfigError(f"model {self.model!r} has no default dataset; name one with --dataset "
                                  f"({', '.join(DATASET_NAMES)} or pkg.module:factory)")
            if ":" in self.dataset:
                load_factory(self.dataset, "dataset")
            elif self.dataset not in DATASET_NAMES:
                raise ConfigError(f"unknown dataset {self.dataset!r}; use --dataset with one of "
                                  f"{', '.join(DATASET_NAMES)} or pkg.module:factory")
            return
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; use --model with one of {', '.join(MODELS)} "
                              "or pkg.module:factory")
        datasets = MODELS[self.model]
        self.dataset = self.dataset or datasets[0]
        if self.dataset not in datasets:
            raise ConfigError(
                f"model {self.model!r} runs on {' | '.join(datasets)}, not {self.dataset!r}; "
                f"use --dataset {datasets[0]} or another --model"
            )

    def check_data(self) -> None:
        """A file-backed dataset's files must be there (checked where the run is, not where it was configured)."""
        from backupsgd.realdata import SOURCES, locate

        if self.dataset in SOURCES:
            locate(self.dataset, self.data_dir)
        elif self.data_dir:
            raise ConfigError(f"dataset {self.dataset!r} ships with the code and reads no files; drop --data-dir")


@dataclass
class StragglerConfig:
    straggler: str = "none"  # spec: none | slow:ranks=2+4,delay=S | slow:ranks=2,factor=X | exp:mean=S | ...

    def __post_init__(self) -> None:
        from backupsgd.straggler import parse_straggler

        parse_straggler(self.straggler, 0)


@dataclass
class OutputConfig:
    out: str = ""  # run directory; empty: a fresh timestamped one under results/runs/
    progress: bool = True  # progress bar on rank 0


@dataclass
class FaultConfig:
    reducer: str = "dense"  # dense: allreduce over all ranks | members: only a step's members reduce (see reducers.py)
    lag_limit: int = 20  # members reducer: a worker this many steps behind gets the current state instead of a backlog
    member_timeout: float = 0.0  # members reducer: seconds a step's reduction may wait before it is decided again
    # without the ranks that did not answer; 0: automatic (0.5 s + 20 ms per MiB of fused buffer, see engine.py)
    stall_timeout: float = 300.0  # seconds without progress before every rank says whom it waits for; 0: never
    fault: str = ""  # injected faults (tests): nan:ranks=2,steps=3-6 | hang:rank=R,step=S | crash:rank=R,step=S
    # | freeze:rank=R,step=S,phase=reduce[,seconds=X]
    checkpoint_every: int = 0  # steps between checkpoints in <run dir>/checkpoints; 0: none
    resume: bool = False  # continue the run in --out DIR from its last intact checkpoint
    check_every: int = 0  # steps between replica checks (ranks compare parameter digests); 0: none

    def __post_init__(self) -> None:
        if self.reducer not in REDUCERS:
            raise ConfigError(f"unknown reducer {self.reducer!r}; use --reducer with one of {', '.join(REDUCERS)}")
        for name in ("checkpoint_every", "check_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}; "
                                  f"fix --{name.replace('_', '-')} (0 turns it off)")
        if self.lag_limit < 2:  # a live worker's acknowledgement of the last step may still be in flight
            raise ConfigError(f"lag_limit must be an integer >= 2, got {self.lag_limit!r}; fix --lag-limit")
        if not math.isfinite(self.member_timeout) or self.member_timeout < 0:
            raise ConfigError(f"member_timeout must be a finite number of seconds >= 0, got {self.member_timeout!r}; "
                              "fix --member-timeout (0 picks it from the buffer size)")
        if not math.isfinite(self.stall_timeout) or self.stall_timeout < 0:
            raise ConfigError(f"stall_timeout must be a finite number of seconds >= 0, got {self.stall_timeout!r}; "
                              "fix --stall-timeout (0 turns the watchdog off)")
        from backupsgd.faults import parse_faults

        parse_faults(self.fault)


@dataclass
class ExperimentConfig:
    mode: ModeConfig = field(default_factory=ModeConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    straggler: StragglerConfig = field(default_factory=StragglerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        f = self.faults
        if self.mode.mode not in ("sync", "backup") and (f.fault or f.checkpoint_every or f.resume or f.check_every
                                                         or f.reducer != FaultConfig.reducer):
            raise ConfigError("--reducer, --fault, --checkpoint-every, --resume and --check-every apply to "
                              "--mode sync and backup only; drop them for --mode " + self.mode.mode)
        if self.mode.mode == "horovod" or f.reducer == "horovod":
            from backupsgd.hvd.runtime import require  # Horovod is imported only by the runs that use it

            require()

    def check_world(self, world: int) -> None:
        """Checks that need the number of ranks; raise ConfigError naming the fix."""
        from backupsgd.hvd.runtime import check_launch  # does not import Horovod

        check_launch(world)
        b = self.mode.backups
        if isinstance(b, str):  # auto: its bounds must leave N >= 1 at this many workers
            try:
                parse_auto(b).bounds(world)
            except ConfigError as exc:
                raise ConfigError(f"{exc}, or launch more ranks (mpirun -n)") from None
            b = 0
        servers = self.mode.servers or 0
        workers = world - servers  # the ps-* modes' servers compute no gradient
        if servers and workers < 1 + b:
            raise ConfigError(
                f"--servers {servers} leaves {workers} worker(s) of {world} ranks, fewer than 1 + b = {1 + b}; "
                f"use fewer --servers or launch more ranks (mpirun -n {servers + b + 1} or more)"
            )
        if b >= world:
            raise ConfigError(
                f"--backups {b} leaves no worker to aggregate with {world} ranks; "
                f"use --backups 0..{world - 1} or launch more ranks (mpirun -n {b + 1} or more)"
            )
        from backupsgd.straggler import parse_straggler

        parse_straggler(self.straggler.straggler, self.workload.seed).check_world(workers)
        from backupsgd.faults import check_fault_world, parse_faults

        check_fault_world(parse_faults(self.faults.fault), workers)
        self.workload.check_data()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        return {k: v for section in self.to_dict().values() for k, v in section.items()}


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(ExperimentConfig)}  # type: ignore[misc]


def option_names() -> list[str]:
    return [f.name for cls in _sections().values() for f in dataclasses.fields(cls)]


def build_config(values: dict[str, Any]) -> ExperimentConfig:
    """Fill every section from one flat mapping (TOML keys and CLI options share names)."""
    unknown = sorted(set(values) - set(option_names()))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; known options: {', '.join(option_names())}")
    sections = {}
    for name, cls in _sections().items():
        for f in dataclasses.fields(cls):
            if f.name in values:
                _check_type(f.name, values[f.name], f.default)
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            sections[name] = cls(**{k: v for k, v in values.items() if k in names})
        except TypeError as exc:
            raise ConfigError(f"bad configuration: {exc}") from None
    return ExperimentConfig(**sections)


TEXT_TOO = ("backups",)  # numeric options that also take a word (backups = "auto")


def _check_type(name: str, value: Any, default: Any) -> None:
    """A value of the wrong type (from a TOML file, say) is a ConfigError, never a crash further in."""
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    expected = kinds.get(type(default))
    if name in TEXT_TOO and isinstance(value, str):  # e.g. backups = "auto": the section checks the text
        return
    if expected is None:  # e.g. a None default: the section checks the value itself
        return
    if not isinstance(value, expected) or (isinstance(value, bool) and type(default) is not bool):
        noun = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[type(default)]
        raise ConfigError(f"{name} must be {noun}, got {value!r}; fix --{name.replace('_', '-')}")


def read_toml(path: Path, what: str, fix: str) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed one is a ConfigError naming `what` and, if missing, `fix`."""
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} not found; {fix}")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not valid TOML ({exc}); fix the line it names") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML experiment file; keys may use '-' or '_'."""
    path = Path(path)
    raw = read_toml(path, "config file", "pass an existing file to --config")
    values = {key.replace("-", "_"): value for key, value in raw.items()}
    tables = [k for k, v in values.items() if isinstance(v, dict)]
    if tables:
        raise ConfigError(f"config file {path}: [{tables[0]}] tables are not supported; write flat key = value lines")
    known = set(option_names())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    return values
