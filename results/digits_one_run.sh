# Sourced by the paired run.sh scripts of results/README section 10: one seed of digits under one straggler spec at
# one b, with the judged sweeps' settings (launch/experiments/auto-digits-shifts.toml), as a one-run sweep from a
# worktree pinned at the code measured (its own backupsgd on PYTHONPATH, this checkout's .venv for the rest).
#   digits_one_run TREE TOML OUT BACKUPS STRAGGLER SEED
# BACKUPS as TOML writes it: 2, or '"auto:max=4,noise=0.15"'. Writes TOML, then runs it into OUT (10 minutes at most;
# the sweep's own limit is 5 a run); its output goes where the caller sends it.
# The straggler regimes these scripts compare, by name (the judged TOMLs spell the same strings):
declare -gA DIGITS_STRAGGLER=( [slow]="phases:none@0-30;slow:ranks=3+4,delay=0.03@30-60;none@60-"
                               [noisy]="phases:none@0-30;exp:mean=0.01@30-60;none@60-" [exp]="exp:mean=0.01" )
digits_one_run() {
  local tree=$1 toml=$2 out=$3 backups=$4 straggler=$5 seed=$6
  cat > "$toml" <<T
[sweep]
ranks = 5
timeout_s = 300
mode = "backup"
model = "mlp"
lr = 0.05
momentum = 0.9
steps = 250
eval_every = 10
backups = [$backups]
straggler = ["$straggler"]
seed = [$seed]
T
  sweep_one_run "$tree" "$toml" "$out" 600
}
# Runs the one-run sweep TOML from the worktree TREE into OUT, killed after LIMIT seconds.
sweep_one_run() {
  local tree=$1 toml=$2 out=$3 limit=$4
  (cd "$tree" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONPATH="$tree" \
     PATH=/work/main/.venv/bin:$PATH timeout "$limit" backupsgd sweep "$toml" --out "$out" --no-progress)
}
