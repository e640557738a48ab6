"""The non-member's zero buffers: a buffer that is not all zeros would add garbage to a step's sum."""

import numpy as np
from backupsgd.reducers import BufferPool


def test_pool_makes_its_spares_up_front_and_hands_out_zeros():
    pool = BufferPool(1000, spares=2)
    taken = [pool.take(), pool.take()]
    assert all(len(b) == 1000 and b.dtype == np.float32 and not b.any() for b in taken)
    assert pool.take() is not taken[0]  # beyond the spares: a fresh one, still zero
    assert not pool.take().any()


def test_a_given_back_buffer_is_zeroed_before_it_is_reused():
    pool = BufferPool(64)
    buf = pool.take()
    buf[:] = 7.0  # a step's sum
    pool.give(buf)
    again = pool.take()
    assert again is buf and not again.any()


def test_pool_ignores_buffers_it_did_not_make_and_forgets_those_it_drops():
    pool = BufferPool(8)
    foreign = np.full(8, 3.0, dtype=np.float32)  # a member's own gradient, reduced in place
    pool.give(foreign)
    assert foreign[0] == 3.0, "a buffer the pool does not own must be left alone"
    taken = [pool.take() for _ in range(BufferPool.KEPT + 2)]
    for b in taken:
        b[:] = 1.0
        pool.give(b)
    kept = [pool.take() for _ in range(BufferPool.KEPT)]
    assert all(not b.any() for b in kept)
    dropped = taken[-2:]  # given back when the pool was full
    for b in dropped:
        b[:] = 5.0
        pool.give(b)  # no longer the pool's: not zeroed, not taken back
    assert all(b[0] == 5.0 for b in dropped)
