# The paired A/B of results/README section 10 (digits exp, 30 seeds): worktrees of 8bd622e at /work/pin7 and
# 3901fb3 at /work/pin6 (git worktree add --detach ...), run from anywhere; then python results/auto-digits-exp60-floors/paired.py
# paired A/B on digits exp: auto at 8bd622e (pin7, common floor) and at 3901fb3 (pin6, floors), seed by seed
for s in $(seq 0 29); do
  sed "s/^seed = .*//; /^  [0-9]/d; /^]/d" /work/main/launch/experiments/auto-digits-exp60.toml | sed 's/^backups = .*/backups = ["auto:max=4,noise=0.15"]/' > /work/meas/ab/s$s.toml
  echo "seed = [$s]" >> /work/meas/ab/s$s.toml
  for v in pin7 pin6; do
    (cd /work/$v && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONPATH=/work/$v PATH=/work/main/.venv/bin:$PATH backupsgd sweep /work/meas/ab/s$s.toml --out /work/meas/ab/$v --no-progress > /dev/null 2>&1)
  done
done
echo done > /work/meas/ab/DONE
