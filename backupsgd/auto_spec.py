"""What `--backups auto[:key=value,...]` asks for: the parsed spec, its parser and its names.

Kept apart from the policy (backupsgd.adaptive) because every front door reads it (the CLI, sweeps, configs,
`backupsgd.torch`, the simulator), most of them only to check or name a value, while only the coordinator and the
simulator run the policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backupsgd.errors import ConfigError

RULES = ("progress", "dbw")
# The least b by default: one backup, so no N waits for the slowest of all P. The rules see a few steps' mean
# arrivals, which cannot foresee a rare long delay (Fashion-MNIST under Pareto: one worker's 35 s at step 5 met
# auto at N = P); one backup bounds what any single worker's tail costs a step, the point of Chen et al.'s method.
DEFAULT_MIN_BACKUPS = 1


@dataclass(frozen=True)
class AutoSpec:
    """A parsed `--backups auto[:key=value,...]`; None bounds mean "what the world allows"."""

    rule: str = "progress"  # progress or dbw
    min_backups: int | None = None  # b never below this (N <= P - min); default 1 where max allows, see bounds()
    max_backups: int | None = None  # b never above this (N >= P - max); default P - 2, see bounds()
    window: int = 20  # memory of the arrival estimates, in steps (an EMA span)
    margin: float = 0.05  # hysteresis: switch N only for a predicted gain above this fraction
    fast: int = 5  # a second arrival estimate of this span, taken where it foretells better (0: none; ArrivalEstimate)
    probe_every: int = 10  # every this many steps, wait for a few more workers to refresh the estimates
    overhead_s: float = 0.0  # fixed per-step cost beside the wait (the exchange), seconds; 0: measured per N
    lr_l: float = 1.0  # dbw only: learning rate times the loss's smoothness L, in (0, 2)
    noise_factor: float = 1.0  # the rules' B_noise is this times the measured B_simple (see AutoPolicy.observe)
    settle: int = 20  # a measured noise scale may raise N above N_min only from this step on (AutoPolicy's docstring)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"--backups auto: unknown rule {self.rule!r}; use rule=progress or rule=dbw")
        if (self.min_backups is not None and self.min_backups < 0) or (
                None not in (self.min_backups, self.max_backups) and self.max_backups < self.min_backups):
            raise ConfigError(f"--backups auto: need 0 <= min <= max, got min={self.min_backups}, "
                              f"max={self.max_backups}; e.g. --backups auto:min=0,max=4")
        if self.window < 1 or self.probe_every < 0 or self.settle < 0 or self.fast < 0:
            raise ConfigError("--backups auto: window must be >= 1, probe >= 0 (0: never probe), settle >= 0 "
                              "(0: trust the first noise scale measured) and fast >= 0 (0: one arrival estimate)")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ConfigError(f"--backups auto: margin must be a finite number >= 0, got {self.margin}")
        if not (math.isfinite(self.overhead_s) and self.overhead_s >= 0):
            raise ConfigError(f"--backups auto: overhead must be a finite number >= 0, got {self.overhead_s}")
        if not (math.isfinite(self.noise_factor) and self.noise_factor > 0):
            raise ConfigError(f"--backups auto: noise (the factor on the measured noise scale) must be a finite "
                              f"number > 0, got {self.noise_factor}; backupsgd report fits it from a static sweep")
        if not 0 < self.lr_l < 2:
            raise ConfigError(f"--backups auto: lr_l (learning rate x smoothness) must be in (0, 2), got {self.lr_l}")

    def bounds(self, workers: int) -> tuple[int, int]:
        """(N_min, N_max) at P workers. The default max keeps N >= 2 where P allows, so the noise
        scale (which needs two batch sizes, backupsgd.noise) stays measurable; the default min keeps
        one backup (DEFAULT_MIN_BACKUPS) unless max leaves no room for it (P <= 2, or max=0)."""
        max_b = max(workers - 2, 0) if self.max_backups is None else self.max_backups
        min_b = min(DEFAULT_MIN_BACKUPS, max_b) if self.min_backups is None else self.min_backups
        if max_b >= workers or min_b >= workers:
            raise ConfigError(f"--backups auto: max={max_b} or min={min_b} leaves no N >= 1 at "
                              f"{workers} workers; give max <= {workers - 1}")
        if min_b > max_b:
            raise ConfigError(f"--backups auto: the default max={max_b} at {workers} workers is below min={min_b}; "
                              f"give min <= {max_b} or a max of its own")
        return workers - max_b, workers - min_b

    @property
    def label(self) -> str:
        """How a report names this choice: 'auto', 'auto-dbw', with any non-default keys after a colon."""
        base = "auto" if self.rule == "progress" else f"auto-{self.rule}"
        default = AutoSpec(rule=self.rule)
        keys = [(k, getattr(self, f), getattr(default, f)) for k, f in _KEYS.items() if k != "rule"]
        extra = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v, d in keys if v != d)
        return f"{base}:{extra}" if extra else base


_KEYS = {"rule": "rule", "min": "min_backups", "max": "max_backups", "window": "window", "margin": "margin",
         "fast": "fast",
         "probe": "probe_every", "overhead": "overhead_s", "lr_l": "lr_l", "noise": "noise_factor",
         "settle": "settle"}


def is_auto(text: str) -> bool:
    return text.strip().startswith("auto")


def backups_slug(backups: int | str) -> str:
    """`backups` as a file name takes it: 2, auto, auto-dbw, auto_min0_max4 (no ':', ',' or '=')."""
    if not isinstance(backups, str):
        return str(backups)
    return parse_auto(backups).label.replace(":", "_").replace(",", "_").replace("=", "")


def parse_auto(text: str) -> AutoSpec:
    """Parse `auto`, `auto-dbw`, `auto:min=0,max=4,rule=dbw` (keys: see _KEYS); ConfigError names the fix."""
    head, _, body = text.strip().partition(":")
    rules = {"auto": "progress", **{f"auto-{r}": r for r in RULES}}
    if head not in rules:
        raise ConfigError(f"--backups {text!r}: expected auto[:min=A,max=B][,rule=progress|dbw] or auto-dbw")
    fields: dict = {"rule": rules[head]}
    given = {"rule"} if head != "auto" else set()  # auto-dbw names its rule: a rule= after it would be a second
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in _KEYS:
            raise ConfigError(f"--backups {text!r}: {item!r} is not one of {', '.join(k + '=...' for k in _KEYS)}; "
                              "e.g. --backups auto:min=0,max=4")
        if key in given:  # which one was meant is a guess, so no guess is made
            raise ConfigError(f"--backups {text!r}: {key} is given twice; give it once")
        given.add(key)
        try:
            if key == "rule":
                fields["rule"] = value
            elif key in ("margin", "overhead", "lr_l", "noise"):
                fields[_KEYS[key]] = float(value)
            else:
                fields[_KEYS[key]] = int(value)
        except ValueError:
            raise ConfigError(f"--backups {text!r}: {key}={value!r} is not a number") from None
    return AutoSpec(**fields)
