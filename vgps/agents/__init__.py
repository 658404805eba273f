"""Offline RL learners for the V-GPS value function: Cal-QL, IQL, the frozen behaviour model,
one training loop, checkpoints, the :class:`Critic` that steering uses, and diagnostics."""
from vgps.agents.critic import Critic, load_critic
from vgps.agents.train import NonFiniteLossError, StepSampler, TrainResult, make_agent, train

__all__ = ["Critic", "load_critic", "NonFiniteLossError", "StepSampler", "TrainResult",
           "make_agent", "train"]
