"""Horovod inside backupsgd: the `horovod` mode, the `horovod` reducer and the bench's Horovod column.

Nothing here imports Horovod at import time; `backupsgd.hvd.runtime` does it when a run asks for it.
"""
