"""`--backups auto`'s spec (backupsgd.auto_spec): what parses and its label parsing back, what is refused and the fix
its error names, and the bounds on N it gives for a world of P workers."""

from __future__ import annotations

import re

import pytest

from backupsgd.auto_spec import AutoSpec, parse_auto
from backupsgd.errors import ConfigError


@pytest.mark.parametrize("text,expected", [
    ("auto", AutoSpec()),
    ("auto:min=0,max=4", AutoSpec(min_backups=0, max_backups=4)),
    ("auto:min=1,max=3,rule=dbw", AutoSpec(rule="dbw", min_backups=1, max_backups=3)),
    ("auto-dbw", AutoSpec(rule="dbw")),
    ("auto:window=5,margin=0.1,probe=0,lr_l=0.5", AutoSpec(window=5, margin=0.1, probe_every=0, lr_l=0.5)),
    ("auto:settle=0", AutoSpec(settle=0)),
    ("auto:fast=0", AutoSpec(fast=0)),
    ("auto:max=4,noise=0.1", AutoSpec(max_backups=4, noise_factor=0.1)),
])
def test_auto_spec_parses_and_its_label_parses_back(text, expected):
    assert parse_auto(text) == expected
    assert parse_auto(expected.label) == expected


@pytest.mark.parametrize("text,fix", [
    ("auto:mn=1", "min=..."),
    ("auto:min=3,max=1", "0 <= min <= max"),
    ("auto:rule=fastest", "rule=progress or rule=dbw"),
    ("auto:max=two", "is not a number"),
    ("autos", "auto[:min=A,max=B]"),
    ("auto:lr_l=2", "(0, 2)"),
    ("auto:noise=0", "must be a finite number > 0"),
    ("auto:fast=-1", "fast >= 0 (0: one arrival estimate)"),
    ("auto:max=4,max=3", "max is given twice"),
    ("auto-dbw:rule=progress", "rule is given twice"),
])
def test_bad_auto_specs_name_the_fix(text, fix):
    with pytest.raises(ConfigError, match=re.escape(fix)):
        parse_auto(text)


def test_bounds_beyond_the_world_are_refused():
    with pytest.raises(ConfigError, match="give max <= 3"):
        parse_auto("auto:max=4").bounds(4)
    with pytest.raises(ConfigError, match="give min <= 2"):
        parse_auto("auto:min=3").bounds(4)  # the default max (P - 2) leaves N >= 2; min=3 asks N <= 1


@pytest.mark.parametrize("text,workers,bounds", [
    ("auto", 5, (2, 4)),  # by default one backup: no N waits for the slowest of all P
    ("auto", 3, (2, 2)),
    ("auto", 2, (2, 2)),  # max = P - 2 = 0 leaves no room for a backup: min falls to 0
    ("auto", 1, (1, 1)),
    ("auto:min=0", 5, (2, 5)),  # N = P only when asked for
    ("auto:max=0", 5, (5, 5)),
    ("auto:max=4", 5, (1, 4)),
    ("auto:min=2,max=3", 5, (2, 3)),
])
def test_default_bounds_keep_one_backup(text, workers, bounds):
    assert parse_auto(text).bounds(workers) == bounds
