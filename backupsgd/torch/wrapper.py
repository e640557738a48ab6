"""The wrapper pattern both DistributedOptimizers share (torchft's OptimizerWrapper): a torch.optim.Optimizer whose
param_groups, state and checkpoints are the wrapped optimizer's, so LR schedulers and checkpoints see the real
ones."""

from __future__ import annotations

import torch


class WrappedOptimizer(torch.optim.Optimizer):
    """Subclasses set `self.optimizer`; torch.optim.Optimizer.__init__ is deliberately not called, since it
    would make param_groups of this object's own."""

    optimizer: torch.optim.Optimizer

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    @property
    def defaults(self) -> dict:
        return self.optimizer.defaults

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict) -> None:
        raise ValueError("hvd.DistributedOptimizer fuses the parameters it was built with into one buffer; add the "
                         "parameter group to the torch optimizer before wrapping it")
