"""Scratch variants of the policy screened on the recorded runs' replay (first order only: each variant is fed the
arrivals the recorded choices saw, so a variant that would have waited for fewer workers still sees more): the rule's
steps at N >= 2 a run from step 20 on (before it, in brackets), and under the noisy neighbourhood the share of steps
the rule put at N >= 2 in its noisy phase (steps 30-59) and after it (60 on). None of these is in the package.
  whole: each step's arrivals folded whole, its first N with the READYs past N that the next decision brings (today
         the first N are folded at once and the rest a decision later, so a slow step lifts E[T_(1)] a step before
         E[T_(2)]); one step later for every k.
  provisional: the first N folded at once, and T_(k), k > N, raised toward this step's N-th arrival (a lower bound)
         until the next decision brings the step's own READYs past N, which then stand instead of the raise.
  raise-once: as provisional, but the raise stays (a second, upward move for a step whose READYs past N come later).
  span80: the long arrival average of span 80, not the window's 20 (the fast one of span 5 kept).
  disappointed: candidates above the current N divided by the mean lived / foretold ratio of the rule's earlier switches
         up (each over its first 3 steps at the new N; a prior of one switch at 1.0; never below 1).
"today" is the policy of the checkout it runs from. Run from the repository root of a checkout:
.venv/bin/python PATH/screen.py PARETO EXP NOISY [VARIANT ...]"""
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
from backupsgd.adaptive import AutoPolicy  # noqa: E402
from backupsgd.arrival_estimates import ArrivalEstimate  # noqa: E402
from backupsgd.auto_quorum import replay_feed  # noqa: E402
from backupsgd.auto_spec import parse_auto  # noqa: E402


class Whole(ArrivalEstimate):
    def observe(self, arrivals, late=(), floors=()):
        if self._previous is not None:
            both = sorted(self._previous + [float(x) for x in late])[: self.workers]
            self._fold(0, both)
            if len(floors):
                self._raise(len(both), sorted(both + [float(x) for x in floors])[: self.workers])
        self.steps += 1
        self._previous = sorted(float(x) for x in arrivals)[: self.workers]

    def skip(self, arrivals=(), pause_s=math.nan):
        if self._previous is not None:
            self._fold(0, self._previous)
        super().skip(arrivals, pause_s)


class RaiseOnce(ArrivalEstimate):
    keep = True
    _saved = None

    def observe(self, arrivals, late=(), floors=()):
        self._restore()
        super().observe(arrivals, late, floors)
        seen = self._previous
        if seen and len(seen) < self.workers:
            n = len(seen)
            self._saved = None if self.keep else (n, self._mean[n:], self._fast[n:])
            self._raise(n, seen + [seen[-1]] * (self.workers - n))

    def skip(self, arrivals=(), pause_s=math.nan):
        self._restore()
        super().skip(arrivals, pause_s)

    def _restore(self):
        if self._saved is not None:
            n, mean, fast = self._saved
            self._mean[n:], self._fast[n:], self._saved, self._expected = mean, fast, None, None


class Provisional(RaiseOnce):
    keep = False


class Disappointed(AutoPolicy):
    def __init__(self, *args, **kwargs):
        self._ratios, self._switch = [1.0], None
        super().__init__(*args, **kwargs)

    def observe(self, *args, **kwargs):
        before = self.n
        super().observe(*args, **kwargs)
        self._note(before)

    def exchanged(self, n, took_s, step_s=None):
        if self._switch and n == self._switch[0] and step_s is not None and not self._observed_paused:
            self._switch[2].append(step_s)
            if len(self._switch[2]) >= 3:
                self._close()
        before = self.n
        super().exchanged(n, took_s, step_s)
        self._note(before)

    def _note(self, before):
        if self.n > before and self.noise_scale == self.noise_scale:
            self._close()
            self._switch = (self.n, float(self.times()[self.n - 1]), [])
        elif self._switch and self.n != self._switch[0]:
            self._close()

    def _close(self):
        if self._switch and self._switch[2]:
            self._ratios.append(float(np.mean(self._switch[2])) / self._switch[1])
        self._switch = None

    def values(self, noise_scale=None, fresh_only=True):
        val = super().values(noise_scale, fresh_only)
        if not hasattr(self, "_switch"):
            return val
        val = val.copy()
        val[self.n:] /= max(1.0, float(np.mean(self._ratios)))
        return val


def policy(name, spec, workers, batch):
    made = (Disappointed if name == "disappointed" else AutoPolicy)(spec, workers, batch, measured_noise=True)
    estimate = {"whole": Whole, "provisional": Provisional, "raise-once": RaiseOnce}.get(name)
    if estimate is not None:
        made.arrivals = estimate(workers, spec.window, spec.fast)
    elif name == "span80":
        made.arrivals = ArrivalEstimate(workers, 80, spec.fast)
    return made


def rule_ns(name, run):
    config = json.loads((run / "config.json").read_text())
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    p = policy(name, parse_auto(config["mode"]["backups"]), config["workers"], config["workload"]["batch_size"])
    ns = []
    for _, choice in replay_feed(p, steps):
        p.choose(**choice)
        ns.append(p.n)
    return np.array(ns)


pareto, exp, noisy = (sorted(Path(d).glob("backup-bauto*")) for d in sys.argv[1:4])
print("variant | Pareto: N >= 2 a run, steps 20 on (before) | exp: the same | noisy: share at N >= 2, "
      "steps 30-59; 60 on")
for name in sys.argv[4:] or ("today", "whole", "provisional", "raise-once", "span80", "disappointed"):
    cells = []
    for runs in (pareto, exp):
        ns = [rule_ns(name, run) for run in runs]
        cells.append(f"{np.mean([np.sum(n[20:] >= 2) for n in ns]):.1f} "
                     f"({np.mean([np.sum(n[:20] >= 2) for n in ns]):.1f})")
    ns = [rule_ns(name, run) for run in noisy]
    noisy_phase, after = (np.mean([np.mean(n[phase] >= 2) for n in ns]) for phase in (slice(30, 60), slice(60, None)))
    cells.append(f"{noisy_phase:.2f}; {after:.2f}")
    print(f"{name} | " + " | ".join(cells), flush=True)
