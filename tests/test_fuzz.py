"""Fuzzed configuration and spec parsing: any input is accepted or refused with a ConfigError, never
another exception (which the CLI would show as a traceback)."""

import json
import os
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backupsgd.config import build_config, load_toml, option_names
from backupsgd.errors import ConfigError
from backupsgd.faults import check_fault_world, parse_faults
from backupsgd.straggler import parse_straggler

# BACKUPSGD_FUZZ_EXAMPLES=5000 for a longer hunt; 300 keeps the suite fast.
FAST = settings(max_examples=int(os.environ.get("BACKUPSGD_FUZZ_EXAMPLES", 300)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["sync", "backup", "members", "dense", "mlp", "adam",
                                                           "slow:ranks=1,delay=0.1", "nan:ranks=1,steps=2"]))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
option_maps = st.dictionaries(st.one_of(st.sampled_from(option_names()), st.text(max_size=8)), values, max_size=6)


def _accepts_or_config_error(fn, *args):
    try:
        return fn(*args)
    except ConfigError:
        return None


@FAST
@given(option_maps, st.integers(1, 70))
def test_any_option_values_build_or_raise_config_error(options, world):
    config = _accepts_or_config_error(build_config, options)
    if config is not None:
        _accepts_or_config_error(config.check_world, world)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # TOML spells inf, -inf and nan as Python does
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


toml_scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                         st.text(alphabet=string.printable, max_size=15))
toml_keys = st.one_of(st.sampled_from(option_names()), st.from_regex(r"[a-z_-]{1,8}", fullmatch=True))
toml_lines = st.lists(st.tuples(toml_keys, st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))), max_size=6)


@FAST
@given(st.one_of(st.text(max_size=200), toml_lines.map(lambda kv: "\n".join(
    f"{k.replace('_', '-') if i % 2 else k} = {_toml_value(v)}" for i, (k, v) in enumerate(kv)))))
@example("[train]\nmode = 'sync'")
@example("steps = 1e400")
@example("a.b = 1")
def test_any_toml_text_loads_or_raises_config_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "experiment.toml"
        path.write_text(text)
        loaded = _accepts_or_config_error(load_toml, path)
        if loaded is not None:
            _accepts_or_config_error(build_config, loaded)


straggler_specs = st.one_of(
    st.text(max_size=40),
    st.builds(lambda kind, params: f"{kind}:{params}",
              st.sampled_from(["none", "slow", "exp", "lognormal", "pareto", "trace", "gamma", ""]),
              st.lists(st.builds(lambda k, v: f"{k}={v}",
                                 st.sampled_from(["ranks", "delay", "factor", "mean", "median", "sigma", "scale",
                                                  "alpha", "x", ""]),
                                 st.one_of(st.text(alphabet="0123456789+-.eainf", max_size=8),
                                           st.floats().map(str))), max_size=4).map(",".join)),
)


@FAST
@given(straggler_specs, st.integers(0, 2**32), st.integers(1, 70))
@example("trace:", 0, 4)
@example("slow:ranks=1+,delay=1", 0, 4)
def test_any_straggler_spec_parses_or_raises_config_error(spec, seed, world):
    model = _accepts_or_config_error(parse_straggler, spec, seed)
    if model is not None:
        _accepts_or_config_error(model.check_world, world)


@FAST
@given(st.binary(max_size=200))
@example(b"1,2\n3\n")
@example(b"\xff\xfe1,2")
@example(b"# comment\nstep,rank\n1,-2\n")
def test_any_trace_file_parses_or_raises_config_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.csv"
        path.write_bytes(content)
        _accepts_or_config_error(parse_straggler, f"trace:{path}", 0)


fault_specs = st.one_of(
    st.text(max_size=40),
    st.lists(st.builds(lambda kind, params: f"{kind}:{params}",
                       st.sampled_from(["nan", "hang", "crash", "perturb", "boom", ""]),
                       st.lists(st.builds(lambda k, v: f"{k}={v}",
                                          st.sampled_from(["rank", "ranks", "step", "steps", "x"]),
                                          st.text(alphabet="0123456789+- ²", max_size=6)),
                                max_size=3).map(",".join)),
             min_size=1, max_size=3).map(";".join),
)


@FAST
@given(fault_specs, st.integers(1, 70))
@example("nan:ranks=2,steps=6-3", 4)
@example("hang:rank=²,step=1", 4)
def test_any_fault_spec_parses_or_raises_config_error(spec, world):
    faults = _accepts_or_config_error(parse_faults, spec)
    if faults is not None:
        _accepts_or_config_error(check_fault_world, faults, world)


def test_fault_specs_parse_to_what_they_say():
    nan, hang = parse_faults("nan:ranks=2+3,steps=3-6+9; hang:rank=1,step=5")
    assert (nan.kind, nan.ranks, nan.steps) == ("nan", (2, 3), ((3, 6), (9, 9)))
    assert [s for s in range(12) if nan.hits(3, s)] == [3, 4, 5, 6, 9] and not nan.hits(1, 4)
    assert (hang.kind, hang.ranks, hang.steps) == ("hang", (1,), ((5, 5),))
    assert parse_faults("") == parse_faults("none") == ()
