"""`skip_missed`: keeps a rank's place in its data on the global step, so every rank's epoch ends together."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from backupsgd.torch.runtime import current

T = TypeVar("T")


class skip_missed(Iterable[T]):
    """Wrap the training loop's iterable: before each batch, apply the steps decided without this rank, and
    skip one batch for each step this rank applied without computing it.

    With it, batch k of an epoch is always computed for (or skipped at) the same global step on every rank,
    so every rank ends an epoch at the same global step and a collective after the epoch (a metric
    `hvd.allreduce`) cannot deadlock against a step that can never reach N gradients. A slow rank skips
    the batches of the steps it missed instead of computing them. `len()` is the wrapped iterable's; an
    `enumerate` over it counts the batches this rank computed.

        for data, target in hvd.skip_missed(train_loader):
    """

    def __init__(self, iterable: Iterable[T], optimizer=None) -> None:
        self._iterable, self._optimizer = iterable, optimizer

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[T]:
        optimizer = self._optimizer or _the_optimizer()
        for item in self._iterable:
            optimizer.catch_up()
            if optimizer.take_owed():
                continue
            yield item


def _the_optimizer():
    optimizers = current().optimizers
    if len(optimizers) != 1:
        raise ValueError(f"skip_missed(loader) follows the one hvd.DistributedOptimizer of this process, but there "
                         f"are {len(optimizers)}; pass skip_missed(loader, optimizer=...)")
    return optimizers[0]
