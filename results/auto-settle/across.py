"""One configuration's runs in one folder against another's in another, seed by seed, in time to the dataset's
default target (training time): for pairing runs of the same seeds made by different code or in different sessions,
which paired.py cannot tell apart when their `backups` are the same. The paired A/B scripts' statistic:
.venv/bin/python results/auto-settle/across.py RUNS_A CONFIG_A RUNS_B CONFIG_B [STRAGGLER]
CONFIG: a `backups` value as the sweep gave it (auto:max=4,noise=2.5, 3); STRAGGLER: the panel, if a folder has two."""
import sys
from pathlib import Path

sys.path.insert(0, ".")
from backupsgd.report.auto import paired_ratio_line, seed_times  # noqa: E402
from backupsgd.report.runs import load_runs  # noqa: E402
from backupsgd.report.target import default_target  # noqa: E402


def times(folder: str, config: str, straggler: str | None) -> dict:
    runs, _ = load_runs(Path(folder), True)
    chosen = [r for r in runs if str(r.backups) == config and straggler in (None, r.straggler)]
    if not chosen or len({r.straggler for r in chosen}) > 1:
        sys.exit(f"{folder}: {len(chosen)} runs of {config!r} in {len({r.straggler for r in chosen})} panels; "
                 "name one configuration of one panel (the fifth argument picks the panel)")
    return seed_times(chosen, default_target(chosen[0].dataset))


if len(sys.argv) not in (5, 6):
    sys.exit(__doc__)
a_dir, a_config, b_dir, b_config = sys.argv[1:5]
panel = sys.argv[5] if len(sys.argv) == 6 else None
print(paired_ratio_line(times(a_dir, a_config, panel), times(b_dir, b_config, panel),
                        f"{a_config} ({a_dir}) / {b_config} ({b_dir})"))
