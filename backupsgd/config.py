"""The experiment configuration: typed dataclasses filled from defaults, a TOML file and CLI overrides."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backupsgd.errors import ConfigError

MODES = ("sync", "backup")
MODELS = {"mlp": "digits", "cnn": "digits", "logreg": "synthetic", "resnet": "cifar"}
REDUCERS = ("dense",)


@dataclass
class ModeConfig:
    mode: str = "backup"  # how gradients are aggregated: sync (all P) or backup (first N of P)
    backups: int = 0  # b: the slowest b workers of each step are dropped; N = P - b

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; use --mode with one of {', '.join(MODES)}")
        if not isinstance(self.backups, int) or self.backups < 0:
            raise ConfigError(f"backups must be an integer >= 0, got {self.backups!r}; set --backups 0 or more")
        if self.mode == "sync" and self.backups:
            raise ConfigError("--mode sync waits for every worker; use --backups 0, or --mode backup for b > 0")


@dataclass
class WorkloadConfig:
    model: str = "mlp"  # mlp | cnn (digits), logreg (synthetic), resnet (cifar-shaped synthetic)
    dataset: str = ""  # digits | synthetic | cifar; empty picks the model's own
    batch_size: int = 32  # per-worker minibatch
    lr: float = 0.1  # learning rate of the optimizer
    optimizer: str = "sgd"  # any torch.optim optimizer, by case-insensitive name (sgd, adam, adamw, rmsprop, ...)
    momentum: float = 0.9  # for optimizers that take momentum (sgd, rmsprop); 0 disables
    steps: int = 200  # updates applied
    seed: int = 0  # seeds model init, minibatch sampling and straggler draws
    eval_every: int = 50  # steps between test evaluations (0: only at the end)
    threads: int = 1  # torch intra-op threads per rank (ranks usually share cores)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; use --model with one of {', '.join(MODELS)}")
        self.dataset = self.dataset or MODELS[self.model]
        if self.dataset != MODELS[self.model]:
            raise ConfigError(
                f"model {self.model!r} runs on dataset {MODELS[self.model]!r}, not {self.dataset!r}; "
                f"use --dataset {MODELS[self.model]} or another --model"
            )
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
class ExperimentConfig:
    mode: ModeConfig = field(default_factory=ModeConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    straggler: StragglerConfig = field(default_factory=StragglerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def check_world(self, world: int) -> None:
        """Checks that need the number of ranks; raise ConfigError naming the fix."""
        b = self.mode.backups
        if b >= world:
            raise ConfigError(
                f"--backups {b} leaves no worker to aggregate with {world} ranks; "
                f"use --backups 0..{world - 1} or launch more ranks (mpirun -n {b + 1} or more)"
            )
        from backupsgd.straggler import parse_straggler

        parse_straggler(self.straggler.straggler, self.workload.seed).check_world(world)

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
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            sections[name] = cls(**{k: v for k, v in values.items() if k in names})
        except TypeError as exc:
            raise ConfigError(f"bad configuration: {exc}") from None
    return ExperimentConfig(**sections)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML experiment file; keys may use '-' or '_'."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; pass an existing file to --config")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the line it names") from None
    values = {key.replace("-", "_"): value for key, value in raw.items()}
    tables = [k for k, v in values.items() if isinstance(v, dict)]
    if tables:
        raise ConfigError(f"config file {path}: [{tables[0]}] tables are not supported; write flat key = value lines")
    known = set(option_names())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    return values
