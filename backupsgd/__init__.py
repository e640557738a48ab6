"""backupsgd: straggler-resilient synchronous data-parallel training over MPI."""

import os

__version__ = "0.1.0"

# Before mpi4py initialises MPI (every entry point imports this package first): Open MPI's UCX one-sided
# component fails its start-up query on machines without UCX hardware and prints an error for every
# shared-memory window the `shm` reducer makes. backupsgd uses windows only within a node (osc/sm).
os.environ.setdefault("OMPI_MCA_osc", "^ucx")
