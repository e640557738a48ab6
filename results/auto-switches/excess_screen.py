"""A screen, by replay of recorded feeds (first order: the arrivals are those of the N each run lived), of how an N's
own measured whole step prices it (AutoPolicy.times): `as it was` (until 2026-12-07), the longer of the N's measured
whole step and E[T_(N)] + overhead(N), a measured step standing for its N unmoved while the rule is elsewhere; `excess`
(the code since), the model plus what the model missed of the N's own steps, which moves with the arrivals. Every
auto run under RUNS (run.sh outputs' new-auto) is replayed under both; the first must make the recorded choices where
the runs were made with it (the share printed). Prints each policy's steps at N >= 2 a run and mean N over steps 3-29,
30-34, 35-59 and 60-89 (fashion-slow4's phases: the slowed phase's first five steps apart). From the repository root:
  .venv/bin/python results/auto-switches/excess_screen.py RUNS [RUNS ...]"""
import json
import math
import sys
from pathlib import Path

import numpy as np

from backupsgd.adaptive import WARM_UP_STEPS, AutoPolicy
from backupsgd.auto_quorum import replay_feed
from backupsgd.auto_spec import parse_auto

PHASES = ((3, 30), (30, 35), (35, 60), (60, 90))


class AsItWas(AutoPolicy):
    """times() and exchanged() as they were before the excess: the estimate keeps each N's whole step."""

    def exchanged(self, n, took_s, step_s=None):
        if self.spec.overhead_s == 0:
            if self.steps <= WARM_UP_STEPS and self._observed_paused:
                return
            if step_s is not None and not self._observed_paused:
                self.step_excess.observe(n, step_s)  # the whole step, not its excess
            first = not self.exchanges.count.any()
            self.exchanges.observe(n, took_s)
            if first and not math.isnan(self.noise_scale):
                self.n = self._best(hold=False)

    def times(self):
        model = self.arrivals.expected() + self.overheads()
        direct = self.step_excess.known()
        if np.isnan(direct).all():
            return model
        missed = float(direct[self.n - 1] - model[self.n - 1])
        return np.where(np.isnan(direct), model + (missed if missed > 0 else 0.0), np.fmax(direct, model))


runs = sorted(run for out in sys.argv[1:] for run in Path(out).glob("**/backup-*") if (run / "steps.jsonl").exists())
if not runs:
    sys.exit(f"no auto run under {' '.join(sys.argv[1:])}")
for name, policy_class in (("as it was", AsItWas), ("excess", AutoPolicy)):
    wide, means, matched, total = np.zeros(len(PHASES)), np.zeros(len(PHASES)), 0, 0
    for run in runs:
        steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
        config = json.loads((run / "config.json").read_text())
        policy = policy_class(parse_auto(config["mode"]["backups"]), config["workers"],
                              config["workload"]["batch_size"], measured_noise=True)
        chosen = np.array([policy.choose(**choice) for _, choice in replay_feed(policy, steps)])
        matched, total = matched + int((chosen == [s["quorum"] for s in steps]).sum()), total + len(steps)
        wide += [(chosen[a:b] >= 2).sum() for a, b in PHASES]
        means += [chosen[a:b].mean() for a, b in PHASES]
    print(f"{name}: {len(runs)} runs, the recorded choice on {matched / total:.1%} of steps; steps at N >= 2 a run: "
          + ", ".join(f"{a}-{b - 1} {w / len(runs):.2f}" for (a, b), w in zip(PHASES, wide))
          + "; mean N: " + ", ".join(f"{m / len(runs):.2f}" for m in means))
