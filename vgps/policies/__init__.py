"""Black-box policy protocol, the five behaviour-cloned stand-ins (:mod:`~vgps.policies.zoo`) and
adapters for the real Octo / OpenVLA / RT-1-X checkpoints (:mod:`~vgps.policies.adapters`)."""
from vgps.policies.base import (ACTION_DIM, Policy, PolicyOutputError, RandomPolicy,
                                validate_actions)

__all__ = ["ACTION_DIM", "Policy", "PolicyOutputError", "RandomPolicy", "validate_actions"]
