"""Lock-step evaluation harness, success-rate intervals, SIMPLER wrapper and result tables."""
from vgps.eval.harness import (Evaluator, RunConfig, episode_seed, make_evaluator, random_policy_bounds,
                               run_lockstep)
from vgps.eval.protocols import best_per_policy, choose_fixed, per_task_table, summary, sweep_configs
from vgps.eval.stats import paired_difference, stratified_bootstrap_mean, success_table, wilson

__all__ = ["best_per_policy", "choose_fixed", "per_task_table", "summary", "sweep_configs", "Evaluator", "RunConfig", "episode_seed",
           "make_evaluator", "random_policy_bounds", "run_lockstep", "paired_difference",
           "stratified_bootstrap_mean", "success_table", "wilson"]
