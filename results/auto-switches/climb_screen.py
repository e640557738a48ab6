"""A screen, by replay of recorded feeds (first order: the arrivals are those of the N each run lived), of three cures
for the optimizer's curse on the rule's climbs (results/README section 10, "What a step's extra gradients buy"):
  halves [MARGIN [NEAR]]  a climb goes ahead only if two policies fed on alternate steps (one the even steps, one the
                          odd: estimates whose noise the choice did not select on) both value the new N above the
                          current one by MARGIN (0); with NEAR, only climbs whose predicted gain is below NEAR ask it
  up MARGIN               a climb needs a predicted gain above MARGIN (descents keep the spec's margin)
  rising                  a step at N costs at least a step at N - 1 plus the model's increment between them
                          (E[T_(N)] + overhead(N) less the same at N - 1): an N's time may not dip below its neighbour's
Prints, for the policy as it is and for the variant, the steps at N >= 2 a run over steps 3-29, 30-59 and 60-109 (the
shifting regimes' phases) and the mean N over steps 60-69 (after digits' noisy neighbour leaves). From the repository
root:  .venv/bin/python results/auto-switches/climb_screen.py ARM VARIANT [ARGS]   (ARM: a folder of auto runs)
"""
import json
import math
import sys
from pathlib import Path

import numpy as np

from backupsgd.adaptive import AutoPolicy
from backupsgd.auto_quorum import replay_feed
from backupsgd.auto_spec import parse_auto

SPEC = "auto:max=4,noise=0.13"  # digits' judged spec (run.sh)
PHASES = ((3, 30), (30, 60), (60, 110))
ARM, VARIANT, ARGS = Path(sys.argv[1]), sys.argv[2], [float(a) for a in sys.argv[3:]]


class Halves(AutoPolicy):
    """Climbs confirmed by two half-sample policies (`halves` above)."""
    margin, near = (ARGS + [0.0, math.inf][len(ARGS):])[:2]

    def __init__(self, spec, workers, batch=1, measured_noise=False):
        self._halves = None  # AutoPolicy.__init__ chooses once, before they exist
        super().__init__(spec, workers, batch, measured_noise)
        self._halves = tuple(AutoPolicy(spec, workers, batch, measured_noise) for _ in range(2))

    def observe(self, arrivals, noise_scale, late=(), paused=False, floors=(), pause_s=math.nan):
        if self._halves:
            self._halves[self.steps % 2].observe(arrivals, noise_scale, late, paused, floors, pause_s)
        super().observe(arrivals, noise_scale, late, paused, floors, pause_s)

    def exchanged(self, n, took_s, step_s=None):
        if self._halves:  # the step observed last is self.steps - 1
            self._halves[(self.steps - 1) % 2].exchanged(n, took_s, step_s)
        super().exchanged(n, took_s, step_s)

    def _best(self, hold=True):
        best = super()._best(hold)
        if self._halves is None or best <= self.n:
            return best
        val = self.values()
        if val[best - 1] > val[self.n - 1] * (1 + self.near):
            return best  # a clear gain: no confirmation asked
        for half in self._halves:
            half.n = self.n  # its times() lend the current N's unexplained step to the others, as the policy's do
            v = half.values(self.noise_scale, fresh_only=False)
            if not v[best - 1] > v[self.n - 1] * (1 + self.margin):
                return self.n
        return best


class Up(AutoPolicy):
    """Climbs need a predicted gain above ARGS[0] (`up` above)."""

    def _best(self, hold=True):
        best = super()._best(hold)
        if not hasattr(self, "n") or not hold or best <= self.n:
            return best
        val = self.values()
        return best if val[best - 1] > val[self.n - 1] * (1 + ARGS[0]) else self.n


class Rising(AutoPolicy):
    """Each N's time at least its lower neighbour's plus the model's increment (`rising` above)."""

    def times(self):
        out = super().times().copy()
        model = self.arrivals.expected() + self.overheads()
        for k in range(1, len(out)):
            if not np.isnan([out[k], out[k - 1], model[k], model[k - 1]]).any():
                out[k] = max(out[k], out[k - 1] + model[k] - model[k - 1])
        out.flags.writeable = False
        return out


spec = parse_auto(SPEC)
for policy_class in (AutoPolicy, {"halves": Halves, "up": Up, "rising": Rising}[VARIANT]):
    wide, late_n, runs = np.zeros(len(PHASES)), [], 0
    for run in sorted(ARM.glob("s*/backup-*")):
        steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
        config = json.loads((run / "config.json").read_text())
        policy = policy_class(spec, config["workers"], config["workload"]["batch_size"], measured_noise=True)
        chosen = np.array([policy.choose(**choice) for _, choice in replay_feed(policy, steps)])
        runs += 1
        wide += [(chosen[a:b] >= 2).sum() for a, b in PHASES]
        late_n.append(chosen[60:70].mean())
    name = "as it is" if policy_class is AutoPolicy else f"{VARIANT} {' '.join(sys.argv[3:])}".strip()
    print(f"{name}: {runs} runs; steps at N >= 2 a run: "
          + ", ".join(f"{a}-{b - 1} {w / runs:.1f}" for (a, b), w in zip(PHASES, wide))
          + f"; mean N over steps 60-69 {np.mean(late_n):.2f}")
