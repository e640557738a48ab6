"""backupsgd: straggler-resilient synchronous data-parallel training over MPI."""

import os

__version__ = "0.1.0"

# Before mpi4py initialises MPI (every entry point imports this package first): Open MPI's UCX one-sided
# component fails its start-up query on machines without UCX hardware and prints an error for every
# shared-memory window the `shm` reducer makes. backupsgd uses windows only within a node (osc/sm).
os.environ.setdefault("OMPI_MCA_osc", "^ucx")

# Under a fault-tolerant launch (`mpirun --with-ft ulfm` sets mpi_ft_enable), leave Open MPI's hierarchical
# collectives (coll/han) out: ULFM has not made them fault tolerant (its tested ones are tuned, basic, libnbc
# and ftagree). HAN's allreduce ignores the errors of its intra- and inter-node parts, so when a rank died
# during an allreduce across nodes the survivors' MPI_Allreduce returned success holding partial sums, and
# a survivor applied a step that was not the average of its recorded members. Tuned reports the failure.
if os.environ.get("OMPI_MCA_mpi_ft_enable", "").lower() in ("1", "t", "true", "y", "yes", "enabled"):
    os.environ.setdefault("OMPI_MCA_coll", "^han")
