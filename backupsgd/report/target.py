"""What a report measures time to: one metric of evals.jsonl reaching a value, going up or going down."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from backupsgd.errors import ConfigError

# A target is reached AT its value or past it: ">=" for a metric that goes up (accuracy), "<=" for one
# that goes down (a loss, bits per byte). Strict comparisons would only move the same crossing by an epsilon.
OPS = (">=", "<=")
# METRIC OP VALUE, spaces allowed around the operator; every comparison operator is caught so that
# `test_accuracy>0.9` is refused with the fix instead of read as a metric named "test_accuracy>0.9".
_SPEC = re.compile(r"^\s*(?P<metric>[^<>=!]*?)\s*(?P<op>=[<>]|[<>=!]=?)\s*(?P<value>.*?)\s*$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EXAMPLES = "e.g. --target 'test_accuracy>=0.9' or --target 'test_loss<=1.2'"


@dataclass(frozen=True)
class Target:
    """The first evaluation whose `metric` is at or past `value` (in the direction of `op`) reaches it."""

    metric: str  # a key of evals.jsonl (and summary.json): test_accuracy, test_loss, test_bits_per_byte, ...
    op: str  # ">=": higher is better; "<=": lower is better
    value: float

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError(f"target operator {self.op!r}: use >= (a metric that goes up) or <= "
                              f"(one that goes down), {EXAMPLES}")
        if not _METRIC.match(self.metric):
            raise ConfigError(f"target metric {self.metric!r}: name a key of evals.jsonl, {EXAMPLES}")
        if not math.isfinite(self.value):
            raise ConfigError(f"target value {self.value}: give a finite number, {EXAMPLES}")
        if self.is_fraction and not 0.0 <= self.value <= 1.0:
            raise ConfigError(f"target {self.metric} {self.op} {self.value:g}: an accuracy is a fraction in "
                              f"[0, 1]; write {self.value / 100:g} for {self.value:g}%")

    @property
    def higher_is_better(self) -> bool:
        return self.op == ">="

    @property
    def is_fraction(self) -> bool:
        """Accuracies are fractions, shown as percentages."""
        return self.metric.endswith("accuracy")

    @property
    def name(self) -> str:
        """The metric in words: "test accuracy", "test bits per byte"."""
        return self.metric.replace("_", " ")

    @property
    def label(self) -> str:
        """e.g. "test accuracy >= 90%", "test loss <= 1.2"."""
        return f"{self.name} {self.op} {self.format(self.value)}"

    @property
    def spec(self) -> str:
        """What `--target` takes back: "test_loss<=1.2"."""
        return f"{self.metric}{self.op}{self.value:g}"

    def format(self, x: float, decimals: int | None = None) -> str:
        """A value of the metric as a table shows it; `decimals=None` gives the shortest exact form."""
        if self.is_fraction:
            return f"{100 * x:g}%" if decimals is None else f"{100 * x:.{decimals}f}%"
        return f"{x:g}" if decimals is None else f"{x:.{decimals + 3}g}"  # a loss: significant digits

    def value_of(self, record: dict[str, Any]) -> float | None:
        """The metric in one evaluation (or summary), None where it was not recorded or not a number."""
        x = record.get(self.metric)
        if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
            return None
        return float(x)

    def reached(self, record: dict[str, Any]) -> bool:
        x = self.value_of(record)
        if x is None:
            return False
        return x >= self.value if self.higher_is_better else x <= self.value

    def better(self, a: float, b: float) -> bool:
        """Whether metric value `a` is strictly better than `b` in this target's direction."""
        return a > b if self.higher_is_better else a < b

    def worst(self) -> float:
        """A value worse than any recorded one: what a run without the metric counts as in a comparison."""
        return -math.inf if self.higher_is_better else math.inf

    def __str__(self) -> str:
        return self.label


def accuracy(value: float) -> Target:
    return Target("test_accuracy", ">=", value)


# Default target per dataset: reached by every mode's healthy runs here within a few hundred steps, yet far
# enough from chance that the time to it separates the modes. A dataset not listed (a new one, or a factory
# given by import path) falls back to FALLBACK_TARGET until it is given its own line here.
DEFAULT_TARGETS: dict[str, Target] = {
    "digits": accuracy(0.90),
    "synthetic": accuracy(0.80),
    "cifar": accuracy(0.50),
    # the real workloads (launch/experiments/fashion.toml, pydocs.toml): a level their runs reach in a few
    # hundred steps on 5 workers, so time to target separates the modes
    "fashion-mnist": accuracy(0.80),
    "mnist": accuracy(0.95),
    "pydocs": Target("test_bits_per_byte", "<=", 4.5),
}
FALLBACK_TARGET = accuracy(0.90)


def default_target(dataset: str) -> Target:
    return DEFAULT_TARGETS.get(dataset, FALLBACK_TARGET)


def defaults_help() -> str:
    """The defaults as `--target`'s help lists them."""
    listed = ", ".join(f"{d} {t.label}" for d, t in DEFAULT_TARGETS.items())
    return f"{listed}; otherwise {FALLBACK_TARGET.label}"


def parse_target(text: str) -> Target:
    """`METRIC>=VALUE` or `METRIC<=VALUE` (any key of evals.jsonl); a bare number is a test accuracy (>=).

    Raises ConfigError naming the fix for anything else: `>`/`<`/`=`, no metric, a value that is not a number.
    """
    raw = text.strip()
    try:
        bare = float(raw)
    except ValueError:
        bare = None
    if bare is not None:
        if not 0.0 <= bare <= 1.0:
            raise ConfigError(f"--target {raw}: a bare number is a test accuracy in [0, 1] (write 0.9 for 90%); "
                              f"name the metric for anything else, {EXAMPLES}")
        return accuracy(bare)
    match = _SPEC.match(raw)
    if match is None:
        raise ConfigError(f"--target {text!r}: write METRIC>=VALUE or METRIC<=VALUE, {EXAMPLES}")
    metric, op, value = match["metric"], match["op"], match["value"]
    if op not in OPS:
        raise ConfigError(f"--target {text!r}: use >= or <= (a target counts as reached at its value), "
                          f"e.g. --target '{metric or 'test_accuracy'}>={value or '0.9'}'")
    if not metric:
        raise ConfigError(f"--target {text!r} names no metric: put a key of evals.jsonl before {op}, {EXAMPLES}")
    if not _METRIC.match(metric):
        raise ConfigError(f"--target {text!r}: {metric!r} is not a metric name (a key of evals.jsonl such as "
                          f"test_accuracy or test_loss), {EXAMPLES}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--target {text!r}: {value!r} is not a number; write e.g. {metric}{op}0.9") from None
    return Target(metric, op, number)
