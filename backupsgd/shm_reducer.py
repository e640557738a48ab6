"""The `shm` reducer: ranks on one machine sum a step's members through shared memory, not messages.

An allreduce between processes on one machine moves every byte through shared-memory queues: a
ring sends 2(P-1)/P of the buffer per rank, each copy made twice (in and out of the queue), and a
non-member's zeros are summed like any gradient. Here each member copies its buffer once into a
segment of an MPI shared-memory window; every rank (member or not) then sums its 1/P slice of the
members' segments into a result slot, and every rank applies the step straight from that slot. A
non-member writes nothing and adds nothing.

Across machines, the ranks with the same node-local rank allreduce their slice between nodes before
the result is read: the hierarchical allreduce of Horovod and NCCL. Nodes may hold different numbers
of ranks (as after a rank died under ULFM and the survivors shrank): then the buffer is cut into as
many cross-node slices as the smallest node has ranks, and a node barrier separates the node's sum
from the exchange between nodes, since the two cut the buffer differently.

Its node and cross-node communicators are revoked with the one it was built on (survivors.revoke_with),
so when a rank dies, a survivor waiting in a node barrier for a peer that has left fails instead of
waiting forever.

Like the dense reducer, every rank's engine thread must take part in every step (a frozen rank
stops it); use the `members` reducer where a worker may hang.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
from mpi4py import MPI

from backupsgd.errors import ConfigError
from backupsgd.mpi_env import agree
from backupsgd.reducers import DenseReducer, SendPool
from backupsgd.survivors import forget, revoke_with

FLOAT = np.dtype(np.float32)
SHM_DIR = "/dev/shm"  # where Open MPI's shared-memory windows (osc/sm) keep their backing files
MIB = 1 << 20


def shm_shortfall(needed: int, path: str = SHM_DIR) -> str | None:
    """Why `needed` bytes of window would not fit in `path`'s free space, else None.

    A tmpfs that runs out does not fail the allocation: the process dies of SIGBUS on the first write
    past the end, so the space is checked up front. Containers often get a 64 MiB /dev/shm.
    """
    try:
        stat = os.statvfs(path)
    except OSError:
        return None  # no such mount: Open MPI then puts the window elsewhere, and we cannot tell where
    free = stat.f_bavail * stat.f_frsize
    if needed <= free:
        return None
    return (f"the shm reducer needs {needed / MIB:,.0f} MiB of {path} on this node, {free / MIB:,.0f} MiB is free; "
            "use --reducer dense, or give the node more shared memory (docker run --shm-size)")


class SharedMemoryReducer:
    """Sum of a step's members via a shared window: inputs[local rank], VIEW_SLOTS results + 1 scratch.

    The training thread gets the result slot itself (no copy) and holds it until it releases it. A
    slot is reused only when no rank of the node holds it, which the ranks agree on in the step's
    first synchronisation (a bitwise OR of the slots each still holds). A rank already holding
    HELD_PER_RANK slots (a straggler still computing while steps are decided without it) gets copies
    instead, so one laggard cannot pin every slot. Should the slots still run out, the step is summed
    into the scratch slot and every rank copies it out: slower, never wrong.
    """

    name = "shm"
    VIEW_SLOTS = 4  # the members' current step (1, sometimes 2) and one straggler's two oldest unapplied steps
    HELD_PER_RANK = 2

    def __init__(self, comm: MPI.Comm, length: int, partial: bool = False, ranks_per_node: int | None = None) -> None:
        # ranks_per_node: pretend nodes of that many consecutive ranks (tests the cross-node path on one machine)
        self.length = length
        if ranks_per_node is None:
            self._node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
        else:
            self._node = comm.Split(comm.rank // ranks_per_node, key=comm.rank)
        self._comm = comm
        p, me = self._node.size, self._node.rank
        q = min(comm.allgather(p))  # cross-node slices: one per rank of the smallest node
        slots = self.VIEW_SLOTS + 1

        def check() -> None:
            if me == 0 and (shortfall := shm_shortfall(self.window_bytes(length, p))):
                raise ConfigError(shortfall)

        agree(comm, check)  # a refusal on any rank: one line from rank 0, every rank exits 2, before any step
        # One rank per node, all with the same cross slice; a node's ranks past the smallest node's have none.
        self._cross = comm.Split(me if me < q else MPI.UNDEFINED, key=comm.rank)
        # On one node the step's synchronisations run on `comm` itself; otherwise on the node's communicator,
        # which (like the cross one) is revoked whenever `comm` is, e.g. by the engine when a rank dies.
        self._sync = comm if self._node.size == comm.size else self._node
        revoke_with(comm, self._node, self._cross)
        self._uneven = q != p  # this node's slices and the cross-node ones differ: a rank sums one, sends another
        self._cross_slice = slice(me * length // q, (me + 1) * length // q) if me < q else None
        # Where every rank of `comm` sits: (its node, its local rank). A node is named by its first rank.
        leader = self._node.bcast(comm.rank, root=0)
        self._place = comm.allgather((leader, self._node.rank))
        self._leader = leader
        self._slice = slice(me * length // p, (me + 1) * length // p)
        # Local rank 0 holds the result slots; every rank its own input segment.
        nbytes = length * FLOAT.itemsize * (1 + (slots if me == 0 else 0))
        self._win = MPI.Win.Allocate_shared(max(nbytes, FLOAT.itemsize), FLOAT.itemsize, comm=self._node)
        self._inputs = [self._segment(r, 0) for r in range(p)]
        self._results = [self._segment(0, 1 + s) for s in range(slots)]
        self._scratch = len(self._results) - 1
        self._held: dict[int, int] = {}  # address of a handed-out result slot -> slot, until released
        self._held_bits = np.zeros(1, dtype=np.int64)  # the slots held, as bits, OR-ed over the node each step
        self._lock = threading.Lock()  # the training thread releases while the engine thread reduces
        # Private copies, taken here and given back by the training thread: a SendPool with no sends is a
        # thread-safe pool that, unlike BufferPool, does not zero what is given back (a copy is overwritten).
        self._copies = SendPool(length)
        self.copied_steps = 0  # steps this rank took a copy of, not the slot

    @classmethod
    def window_bytes(cls, length: int, ranks_on_node: int) -> int:
        """/dev/shm a node's window takes: every rank's input segment, the result slots and the scratch."""
        return length * FLOAT.itemsize * (ranks_on_node + cls.VIEW_SLOTS + 1)

    def _segment(self, local_rank: int, index: int) -> np.ndarray:
        mem, _ = self._win.Shared_query(local_rank)
        whole = np.frombuffer(mem, dtype=FLOAT)
        return whole[index * self.length:(index + 1) * self.length]

    def staging_buffer(self) -> np.ndarray:
        """This rank's input segment: a gradient computed straight into it is offered without a copy.

        Safe to write whenever the training thread is not waiting on an offered step: other ranks read
        it only while reducing a step this rank is a member of, and that ends before the step's decision.
        """
        return self._inputs[self._node.rank]

    def reduce(self, members: tuple[int, ...], local: np.ndarray | None) -> np.ndarray:
        mine = self._inputs[self._node.rank]
        if local is not None and local.ctypes.data != mine.ctypes.data:
            np.copyto(mine, local)
        with self._lock:
            self._held_bits[0] = sum(1 << slot for slot in self._held.values())
        # The step's first synchronisation: every input is written, and the node agrees on a free slot.
        self._sync.Allreduce(MPI.IN_PLACE, self._held_bits, op=MPI.BOR)
        held = int(self._held_bits[0])
        slot = next((s for s in range(self.VIEW_SLOTS) if not held >> s & 1), self._scratch)
        result = self._results[slot]
        here = [self._place[m][1] for m in members if self._place[m][0] == self._leader]
        self._sum_slice(here, result[self._slice])
        if self._uneven:
            self._sync.Barrier()  # the node's sum is whole before it is cut the cross-node way
        if self._cross_slice is not None and self._cross.size > 1:
            self._cross.Allreduce(MPI.IN_PLACE, result[self._cross_slice], op=MPI.SUM)
        self._sync.Barrier()  # every slice is summed
        with self._lock:
            keep = slot != self._scratch and len(self._held) < self.HELD_PER_RANK
            if keep:
                self._held[result.ctypes.data] = slot
        if keep:
            return result
        # Copied before this rank's next step starts, so before anyone writes this slot again.
        self.copied_steps += 1
        out = self._copies.take()
        np.copyto(out, result)
        return out

    def _sum_slice(self, local_members: list[int], out: np.ndarray) -> None:
        parts = [self._inputs[r][self._slice] for r in local_members]
        if not parts:
            out.fill(0)
        elif len(parts) == 1:
            np.copyto(out, parts[0])
        else:
            np.add(parts[0], parts[1], out=out)
            for part in parts[2:]:
                np.add(out, part, out=out)

    def release(self, buf: np.ndarray) -> None:
        with self._lock:
            if self._held.pop(buf.ctypes.data, None) is not None:
                return
        self._copies.give(buf)

    def close(self) -> None:
        with self._lock:
            self._held.clear()
        self._inputs = self._results = []
        self._win.Free()  # collective over the node: every rank closes its exchange
        forget(self._comm)
        if self._cross != MPI.COMM_NULL:
            self._cross.Free()
        self._node.Free()


def auto_reducer(comm: MPI.Comm, length: int, partial: bool = False,
                 ranks_per_node: int | None = None) -> SharedMemoryReducer | DenseReducer:
    """`--reducer auto`: shm where every rank is on one node and /dev/shm holds the window, else dense, with
    one line on rank 0 saying why. Collective: every rank takes the same reducer.

    Why not shm across nodes too: there the link, not the copies, sets the time, and on the namespace
    cluster, quiet, the hierarchical exchange took 1.25-1.50x the dense one's in six rounds of 4 and
    16 MiB (results/cluster/reducers-1gbit.json): dense, which Open MPI already runs hierarchically (HAN),
    wins. Within a node shm took 0.13-0.35x Horovod's allreduce (make bench). (A version that took shm
    across nodes here stalled one exchange of the cluster bench for 150 s at load 16-19. It built the very
    reducer `--reducer shm` builds, after one node split it freed. Re-run at load 18-20 (2026-12-01 20:24
    UTC, 6 rounds each), an exchange's set-up and warm-up stalled up to 6.6 s with shm by name, 6.0 s with
    that version and 7.2 s with dense, in node barriers and cross-node allreduces: ranks starved of the 2
    shared cores, not this function. The 150 s was not seen again.)
    """
    if ranks_per_node is None:  # ranks_per_node: pretend nodes, as SharedMemoryReducer's (tests)
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    else:
        node = comm.Split(comm.rank // ranks_per_node, key=comm.rank)
    try:
        one_node = node.size == comm.size
        shortfall = shm_shortfall(SharedMemoryReducer.window_bytes(length, node.size)) if node.rank == 0 else None
    finally:
        node.Free()
    reasons = [r.split(";")[0] for r in comm.allgather(shortfall) if r]
    if one_node and not reasons:
        return SharedMemoryReducer(comm, length, partial)
    if comm.rank == 0:
        why = reasons[0] if reasons else "the ranks span nodes, where shm measured slower than dense (1.25-1.50x)"
        print(f"backupsgd: note: --reducer auto takes dense: {why}", file=sys.stderr, flush=True)
    return DenseReducer(comm, length, partial)
