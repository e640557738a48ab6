"""Straggler and network simulator: predicts every mode's step time without MPI and recommends N and b."""

from backupsgd.sim.model import MODES, Prediction, predict_step_time
from backupsgd.sim.network import NetConfig
from backupsgd.sim.recommend import recommend
from backupsgd.sim.sweep import SimConfig, SimResult, simulate

__all__ = ["MODES", "NetConfig", "Prediction", "SimConfig", "SimResult", "predict_step_time", "recommend", "simulate"]
