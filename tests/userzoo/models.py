"""Factories as a user would write them: the digits MLP and data, and some that must be refused."""

import torch
from torch import nn

from backupsgd.data import load_dataset


def mlp() -> nn.Module:
    """The same layers as the built-in `mlp`, so a run with it must equal a run with `--model mlp`."""
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def digits():
    data = load_dataset("digits")
    return data.x_train, data.y_train, data.x_test, data.y_test


def not_a_model():
    return "a string"


def float_labels():
    return torch.zeros(4, 64), torch.zeros(4), torch.zeros(2, 64), torch.zeros(2)
