#!/usr/bin/env bash
# The CUDA path, on a machine with a GPU (this project's development machines and CI have none). From the repository
# root, with backupsgd importable (PYTHONPATH=$PWD will do) and Open MPI's mpirun on PATH:
#   bash launch/gpu_check.sh OUT_DIR
# 1. backupsgd.torch with the model on cuda (examples/pytorch_digits.py, 4 ranks sharing the GPUs there are):
#    b = 1 with rank 3 sleeping 50 ms a batch (dropped, so it replays the members' updates), then
#    BACKUPSGD_BACKUPS=auto. Every rank must end on cuda with the same parameters, bit for bit, and the same
#    optimizer state.
# 2. `backupsgd train` (its ranks compute on cuda:<local rank> when a GPU is present), backup b = 1, 4 ranks,
#    300 steps under exponential delays: one parameter digest over every rank.
# 3. examples/pytorch_synthetic_benchmark.py on cuda, 4 ranks, rank 3 sleeping 20 ms a batch: b = 0 and b = 1 side
#    by side (images a second whose gradients were applied, and their ratio); replicas identical in both.
# One line per check; exits non-zero at the first that fails.
set -euo pipefail
out=${1:?usage: bash launch/gpu_check.sh OUT_DIR}
mkdir -p "$out"
py=${PYTHON:-python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
"$py" -c "import torch; assert torch.cuda.is_available(), 'no GPU here: nothing to check'
print('GPU:', torch.cuda.get_device_name(0), 'x', torch.cuda.device_count(), '| torch', torch.__version__)"

run() {  # LOG COMMAND...: run it with a time limit; its log's tail where it fails
  local log=$1; shift
  if ! timeout 300 "$@" > "$log" 2>&1; then tail -40 "$log"; echo "FAILED: $*"; exit 1; fi
}

library() {  # NAME BACKUPS EXAMPLE_ARGS...
  local name=$1 backups=$2; shift 2
  BACKUPSGD_BACKUPS=$backups run "$out/$name.log" mpirun --oversubscribe -x BACKUPSGD_BACKUPS -n 4 \
    "$py" examples/pytorch_digits.py --epochs 2 --save "$out/$name" "$@"
  "$py" - "$out/$name" <<'EOF'
import json, sys
from pathlib import Path
import numpy as np
d = Path(sys.argv[1])
params = [np.load(d / f"params-{r}.npy") for r in range(4)]
ranks = [json.loads((d / f"rank-{r}.json").read_text()) for r in range(4)]
same = all(np.array_equal(params[0], p) for p in params) and len({r["optimizer_state"] for r in ranks}) == 1
devices = sorted({r["device"] for r in ranks})
print(f"library {d.name}: devices {devices}, identical replicas {same}, batches computed "
      f"{[r['computed'] for r in ranks]}, test accuracy {ranks[0]['accuracy']:.3f}")
assert same and all(x.startswith("cuda") for x in devices), "FAILED: replicas differ or not on cuda"
EOF
}

library b1 1 --slow-rank 3 --slow-sleep 0.05
library auto auto
run "$out/train.log" mpirun --oversubscribe -n 4 "$py" -m backupsgd train --mode backup --backups 1 --model mlp \
  --dataset digits --steps 300 --straggler exp:mean=0.005 --out "$out/train" --no-progress
"$py" - "$out/train" <<'EOF'
import json, sys
from pathlib import Path
summary = json.loads((Path(sys.argv[1]) / "summary.json").read_text())
digests = set(summary["param_digests"])
print(f"train backup b=1: devices {sorted(set(summary['devices']))}, one parameter digest over "
      f"{len(summary['param_digests'])} ranks: {len(digests) == 1}, test accuracy {summary['test_accuracy']:.3f}, "
      f"{summary['wall_s']:.1f} s")
on_cuda = all(d.startswith("cuda") for d in summary["devices"])
assert len(digests) == 1 and on_cuda, "FAILED: replicas differ or not on cuda"
EOF
for b in 0 1; do
  BACKUPSGD_BACKUPS=$b run "$out/bench-b$b.log" mpirun --oversubscribe -x BACKUPSGD_BACKUPS -n 4 "$py" \
    examples/pytorch_synthetic_benchmark.py --batch-size 64 --width 64 --slow-rank 3 --slow-delay 0.02 \
    --json "$out/bench-b$b.json"
  grep -q "replicas identical: yes" "$out/bench-b$b.log" || { tail -20 "$out/bench-b$b.log"; echo FAILED; exit 1; }
done
"$py" - "$out" <<'EOF'
import json, sys
from pathlib import Path
b0, b1 = (json.loads((Path(sys.argv[1]) / f"bench-b{b}.json").read_text()) for b in (0, 1))
assert b0["device"].startswith("cuda") and b1["device"].startswith("cuda"), "FAILED: not on cuda"
print(f"synthetic benchmark on {b0['device']}, rank 3 20 ms slow: b = 0 {b0['img_per_s']:.0f} img/s, "
      f"b = 1 {b1['img_per_s']:.0f} img/s applied, b = 1 / b = 0 {b1['img_per_s'] / b0['img_per_s']:.2f}x")
EOF
echo "gpu_check: every check passed"
