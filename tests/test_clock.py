"""backupsgd.clock: the choice of sample without MPI, then the ping-pong under mpirun against a known offset."""

import pytest
from mpirun import mpirun

from backupsgd.clock import best_offset


def test_the_sample_with_the_smallest_round_trip_gives_the_offset():
    # rank 0's clock is 10 s ahead; a symmetric 2 ms round trip, and one held up 50 ms on the way back
    true = 10.0
    exact = (1.0, 1.001 + true, 1.002)
    skewed = (2.0, 2.001 + true, 2.051)
    offset, rtt = best_offset([skewed, exact])
    assert offset == pytest.approx(true) and rtt == pytest.approx(0.002)
    # the bound holds for the skewed sample alone: |error| <= rtt / 2
    offset, rtt = best_offset([skewed])
    assert abs(offset - true) <= rtt / 2
    with pytest.raises(ValueError, match="rounds >= 1"):
        best_offset([])


def test_offsets_match_the_oracle_on_two_ranks():
    result = mpirun(2, ["tests/mpi/clock_oracle.py"], timeout=120)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    assert result.stdout.startswith("ok"), result.stdout
