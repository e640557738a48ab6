"""A Horovod-style epoch loop on offline data (scikit-learn's 8x8 digits), with backup workers.

    mpirun -n 4 python examples/pytorch_digits.py                      # backupsgd, b from BACKUPSGD_BACKUPS (0)
    BACKUPSGD_BACKUPS=1 mpirun -n 4 python examples/pytorch_digits.py  # each step averages the first 3 of 4
    mpirun -n 4 python examples/pytorch_digits.py --horovod            # the same script on horovod.torch
    horovodrun -np 4 -H localhost:4 python examples/pytorch_digits.py

Coming from Horovod, two lines differ: the import, and `hvd.skip_missed(train_loader)` around the epoch's
data (a rank that missed steps skips their batches, so every rank ends the epoch on the same global step).
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

if "--horovod" in sys.argv:
    import horovod.torch as hvd
else:
    import backupsgd.torch as hvd

parser = argparse.ArgumentParser(description="PyTorch digits example")
parser.add_argument("--horovod", action="store_true", help="run on horovod.torch instead of backupsgd.torch")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--lr", type=float, default=0.05, help="per-rank learning rate (scaled by the number of ranks)")
parser.add_argument("--momentum", type=float, default=0.9)
parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
parser.add_argument("--backward-passes-per-step", type=int, default=1)
parser.add_argument("--max-grad-norm", type=float, default=None, help="clip the averaged gradient (backupsgd)")
parser.add_argument("--clip-in-script", type=float, default=None,
                    help="clip between synchronize() and step() in user code (refused by backupsgd when b > 0)")
parser.add_argument("--slow-rank", type=int, default=-1, help="this rank sleeps --slow-sleep seconds per batch")
parser.add_argument("--slow-sleep", type=float, default=0.0)
parser.add_argument("--no-cuda", action="store_true", help="stay on the CPU where a GPU is present")
parser.add_argument("--seed", type=int, default=int(os.environ.get("BACKUPSGD_SEED", 42)),
                    help="model init and data order (default: $BACKUPSGD_SEED, set by backupsgd sweep, else 42)")
parser.add_argument("--save", type=str, default="", help="write each rank's final parameters and counts here")
args = parser.parse_args()

hvd.init()
torch.manual_seed(args.seed)
torch.set_num_threads(1)

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)
train_dataset = TensorDataset(torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train))
test_dataset = TensorDataset(torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test))
train_sampler = DistributedSampler(train_dataset, num_replicas=hvd.size(), rank=hvd.rank(), seed=args.seed)
train_loader = DataLoader(train_dataset, batch_size=args.batch_size, sampler=train_sampler)
test_sampler = DistributedSampler(test_dataset, num_replicas=hvd.size(), rank=hvd.rank(), shuffle=False)
test_loader = DataLoader(test_dataset, batch_size=128, sampler=test_sampler)

# As Horovod's examples: each rank on a GPU where there is one (ranks beyond the GPUs share them); the exchange of
# gradients is staged through host memory either way
device = torch.device("cpu")
if not args.no_cuda and torch.cuda.is_available():
    device = torch.device("cuda", hvd.local_rank() % torch.cuda.device_count())
    torch.cuda.set_device(device)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
if args.optimizer == "sgd":
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr * hvd.size(), momentum=args.momentum)
else:
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr * hvd.size() / 10)
hvd.broadcast_parameters(model.state_dict(), root_rank=0)
hvd.broadcast_optimizer_state(optimizer, root_rank=0)
extra = {} if args.max_grad_norm is None else {"max_grad_norm": args.max_grad_norm}
optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                     backward_passes_per_step=args.backward_passes_per_step, **extra)
# The one line a Horovod script adds: skip the batches of the steps this rank missed.
skip_missed = getattr(hvd, "skip_missed", lambda loader: loader)
computed, used_steps = 0, []  # batches this rank computed; steps its gradient was used in


def train(epoch):
    global computed
    model.train()
    train_sampler.set_epoch(epoch)
    for data, target in skip_missed(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        passes = args.backward_passes_per_step
        for part_x, part_y in zip(data.chunk(passes), target.chunk(passes)):
            loss = F.cross_entropy(model(part_x), part_y) / passes
            loss.backward()
        if hvd.rank() == args.slow_rank:
            time.sleep(args.slow_sleep)
        computed += 1
        if args.clip_in_script is not None:
            optimizer.synchronize()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_in_script)
            with optimizer.skip_synchronize():
                optimizer.step()
        else:
            optimizer.step()
        last = getattr(optimizer, "last_step", None)  # backupsgd: was this rank's gradient among the members?
        if last is not None and last.used:
            used_steps.append(last.step)


def metric_average(value, name):
    return hvd.allreduce(torch.tensor(value), name=name).item()


def test():
    model.eval()
    loss = correct = 0.0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss += F.cross_entropy(output, target, reduction="sum").item()
            correct += (output.argmax(1) == target).sum().item()
    loss = metric_average(loss / len(test_sampler), "avg_loss")
    accuracy = metric_average(correct / len(test_sampler), "avg_accuracy")
    if hvd.rank() == 0:
        print(f"test set: average loss {loss:.4f}, accuracy {100 * accuracy:.1f}%", flush=True)
    if hasattr(hvd, "log_eval"):  # backupsgd: into the run directory, when BACKUPSGD_RUN_DIR names one
        hvd.log_eval(accuracy=accuracy, loss=loss)
    return accuracy


start = time.time()
for epoch in range(1, args.epochs + 1):
    train(epoch)
    accuracy = test()
wall = time.time() - start

if args.save:
    out = Path(args.save)
    out.mkdir(parents=True, exist_ok=True)
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()
    np.save(out / f"params-{hvd.rank()}.npy", params)
    state = optimizer.state_dict()["state"]
    moments = [t.cpu().numpy().tobytes() for s in state.values() for t in s.values() if torch.is_tensor(t)]
    (out / f"rank-{hvd.rank()}.json").write_text(json.dumps({
        "rank": hvd.rank(), "computed": computed, "used_steps": used_steps, "wall_s": wall, "accuracy": accuracy,
        "global_step": getattr(optimizer, "global_step", None), "batches_per_epoch": len(train_loader),
        "device": str(next(model.parameters()).device),
        "optimizer_state": hashlib.sha256(b"".join(moments)).hexdigest()}))
