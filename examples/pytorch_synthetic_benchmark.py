"""Images per second on synthetic data, in the shape of Horovod's pytorch_synthetic_benchmark.py.

    mpirun -n 4 python examples/pytorch_synthetic_benchmark.py                       # backupsgd.torch, b = 0
    BACKUPSGD_BACKUPS=1 mpirun -n 4 python examples/pytorch_synthetic_benchmark.py   # b = 1
    mpirun -n 4 python examples/pytorch_synthetic_benchmark.py --horovod             # horovod.torch
    horovodrun -np 4 -H localhost:4 python examples/pytorch_synthetic_benchmark.py
    ... --slow-rank 3 --slow-factor 5                                               # rank 3 computes 5x slower
    ... --slow-rank 3 --slow-delay 0.08                                             # rank 3 sleeps 80 ms per batch

Throughput counts the images whose gradients were applied: global steps x N x batch size over rank 0's
wall time (with Horovod N = P). A rank slowed by --slow-factor F sleeps (F - 1) x its compute time per batch.
"""

import argparse
import hashlib
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

if "--horovod" in sys.argv:
    import horovod.torch as hvd
else:
    import backupsgd.torch as hvd

parser = argparse.ArgumentParser(description="PyTorch synthetic benchmark",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument("--horovod", action="store_true", help="run on horovod.torch instead of backupsgd.torch")
parser.add_argument("--fp16-allreduce", action="store_true", help="use fp16 compression during the exchange")
parser.add_argument("--batch-size", type=int, default=32, help="input batch size")
parser.add_argument("--image-size", type=int, default=32)
parser.add_argument("--width", type=int, default=32, help="channels of the first convolution")
parser.add_argument("--num-warmup-batches", type=int, default=5, help="batches before timing starts")
parser.add_argument("--num-batches-per-iter", type=int, default=10, help="batches per benchmark iteration")
parser.add_argument("--num-iters", type=int, default=5, help="benchmark iterations")
parser.add_argument("--slow-rank", type=int, default=-1)
parser.add_argument("--slow-factor", type=float, default=1.0, help="the slow rank computes this many times as long")
parser.add_argument("--slow-delay", type=float, default=0.0,
                    help="or: the slow rank sleeps this many seconds more per batch (the same for every library)")
parser.add_argument("--json", type=str, default="", help="rank 0 writes its numbers here")
parser.add_argument("--no-cuda", action="store_true", help="stay on the CPU where a GPU is present")
args = parser.parse_args()

hvd.init()
torch.manual_seed(0)
torch.set_num_threads(1)
# each rank on a GPU where there is one; ranks beyond the GPUs share them (4 ranks on one GPU: launch/gpu_check.sh)
cuda = not args.no_cuda and torch.cuda.is_available()
device = torch.device(f"cuda:{hvd.local_rank() % torch.cuda.device_count()}" if cuda else "cpu")

w = args.width
model = nn.Sequential(
    nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(w, 2 * w, 3, padding=1), nn.GroupNorm(8, 2 * w), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.GroupNorm(8, 4 * w), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 10),
).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01 * hvd.size())
compression = hvd.Compression.fp16 if args.fp16_allreduce else hvd.Compression.none
optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(), compression=compression)
hvd.broadcast_parameters(model.state_dict(), root_rank=0)
hvd.broadcast_optimizer_state(optimizer, root_rank=0)

data = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
target = torch.randint(0, 10, (args.batch_size,), device=device)
# Every rank runs the same number of global steps; a rank that missed some skips their batches.
skip_missed = getattr(hvd, "skip_missed", lambda batches: batches)
slow = hvd.rank() == args.slow_rank


computes = []  # this rank's forward + backward times


def benchmark_step():
    if slow:  # before the compute: a slow rank's gradients are late (Horovod's hooks would send them in backward)
        time.sleep(args.slow_delay + (args.slow_factor - 1) * (computes[-1] if computes else 0.0))
    t0 = time.perf_counter()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(data), target)
    loss.backward()
    computes.append(time.perf_counter() - t0)
    optimizer.step()


for _ in skip_missed(range(args.num_warmup_batches)):
    benchmark_step()
hvd.barrier()
quorum = hvd.quorum() if hasattr(hvd, "quorum") else hvd.size()
rates = []
for it in range(args.num_iters):
    t0 = time.perf_counter()
    for _ in skip_missed(range(args.num_batches_per_iter)):
        benchmark_step()
    rate = args.batch_size * quorum * args.num_batches_per_iter / (time.perf_counter() - t0)
    rates.append(rate)
    if hvd.rank() == 0:
        print(f"Iter #{it}: {rate:.1f} img/sec applied (N = {quorum} of {hvd.size()} ranks)", flush=True)

# Every rank applied the same updates: their parameters must be bit-identical.
flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()
digests = hvd.allgather_object(hashlib.sha256(flat.tobytes()).hexdigest())
if hvd.rank() == 0:
    print(f"replicas identical: {'yes' if len(set(digests)) == 1 else 'NO: ' + ', '.join(digests)}", flush=True)
    mean = sum(rates) / len(rates)
    print(f"Total img/sec applied: {mean:.1f} (N = {quorum} of {hvd.size()}, batch {args.batch_size})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"img_per_s": mean, "iters": rates, "compute_s": sorted(computes)[len(computes) // 2],
                       "ranks": hvd.size(), "quorum": quorum,
                       "library": "horovod" if args.horovod else "backupsgd", "slow_rank": args.slow_rank,
                       "slow_factor": args.slow_factor, "slow_delay": args.slow_delay,
                       "batch_size": args.batch_size, "device": str(device)}, f)
