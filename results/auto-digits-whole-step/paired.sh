# The paired A/B of results/README section 10 (digits exp, 30 seeds): auto at 2656b13 (worktree /work/pin8) and at
# the whole-step change (/work/pin9), and b = 4 (at /work/pin8), seed by seed in one window; make the worktrees
# with `git worktree add --detach /work/pinN <commit>`, run from anywhere, then
# python results/auto-digits-whole-step/paired.py /work/meas/ab2
out=${1:-/work/meas/ab2}
mkdir -p "$out"
for s in $(seq 0 29); do
  sed "s/^seed = .*//; /^  [0-9]/d; /^]/d" /work/main/launch/experiments/auto-digits-exp60.toml |
    sed 's/^backups = .*/backups = ["auto:max=4,noise=0.15"]/' > "$out/s$s.toml"
  echo "seed = [$s]" >> "$out/s$s.toml"
  sed 's/^backups = .*/backups = [4]/' "$out/s$s.toml" > "$out/b4-s$s.toml"
  for v in pin8 pin9 b4; do
    if [ $v = b4 ]; then pin=pin8; toml=$out/b4-s$s.toml; else pin=$v; toml=$out/s$s.toml; fi
    (cd /work/$pin && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONPATH=/work/$pin \
      PATH=/work/main/.venv/bin:$PATH backupsgd sweep "$toml" --out "$out/$v" --no-progress > /dev/null 2>&1)
  done
  echo seed $s $(date +%T)
done
