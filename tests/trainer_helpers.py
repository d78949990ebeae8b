"""Shared helpers of the trainer tests: a small, fast ActionConfig."""

from openmm_actionmin.search.action import ActionConfig
from openmm_actionmin.search.descent import DescentConfig


def small_config(**kwargs) -> ActionConfig:
    base = dict(
        seed=3,
        budget_s=None,
        max_rounds=6,
        model_hidden=16,
        warm_start_samples=256,
        warm_start_steps=150,
        warm_start_batch=128,
        n_starts=8,
        max_path_points=128,
        fresh_batch=64,
        lr=1e-2,
        descent=DescentConfig(max_steps=100, eps=1e-2),
    )
    base.update(kwargs)
    return ActionConfig(**base)
