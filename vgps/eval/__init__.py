"""Lock-step evaluation harness, success-rate intervals, SIMPLER wrapper and result tables."""
from vgps.eval.harness import Evaluator, RunConfig, episode_seed, run_lockstep
from vgps.eval.stats import paired_difference, stratified_bootstrap_mean, success_table, wilson

__all__ = ["Evaluator", "RunConfig", "episode_seed", "run_lockstep", "paired_difference",
           "stratified_bootstrap_mean", "success_table", "wilson"]
