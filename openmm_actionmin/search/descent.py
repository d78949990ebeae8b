"""Batched gradient descent with Armijo backtracking on a differentiable model.

The action trainer needs the trajectories that gradient descent on the model
``f`` follows from many starts to the model's minimiser. A fixed step stops far
short of the minimiser (see ``docs/method.md``), so every
start keeps its own step size, shrinks it until the Armijo sufficient-decrease
condition holds and grows it again after an accepted step.

The model is any callable ``f(x [B, d]) -> [B]`` differentiable in ``x``; the
descent never touches the model's parameter gradients.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

ModelFn = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class DescentConfig:
    """Settings of :func:`descend`.

    Attributes:
        max_steps: Maximum accepted descent steps per trajectory batch.
        initial_step: First trial step size (in the model's input units).
        shrink: Factor applied to a rejected step size, in (0, 1).
        grow: Factor applied to the step size after an accepted step (>= 1).
        armijo_c: Sufficient-decrease constant c in
            ``f(x - t g) <= f(x) - c t ||g||^2``.
        max_backtracks: Maximum step shrinks per descent step; a start whose
            step is still rejected then stays where it is for this step.
        eps: The batch has converged when the largest pairwise distance
            between current points is below ``eps`` (model input units).
        min_step: A start whose step size drops below this has stalled
            (it stops moving; counted as converged for the batch test).
    """

    max_steps: int = 500
    initial_step: float = 0.5
    shrink: float = 0.5
    grow: float = 2.0
    armijo_c: float = 1e-4
    max_backtracks: int = 40
    eps: float = 1e-3
    min_step: float = 1e-12

    def __post_init__(self) -> None:
        if not 0.0 < self.shrink < 1.0:
            raise ValueError(f"DescentConfig.shrink must lie in (0, 1), got {self.shrink}")
        if self.grow < 1.0:
            raise ValueError(f"DescentConfig.grow must be >= 1, got {self.grow}")
        if self.max_steps < 0 or self.max_backtracks < 1:
            raise ValueError("DescentConfig.max_steps must be >= 0 and max_backtracks >= 1")
        if self.initial_step <= 0 or self.eps <= 0:
            raise ValueError("DescentConfig.initial_step and eps must be positive")


@dataclasses.dataclass
class DescentPath:
    """Everything a batched descent visited.

    Attributes:
        points: Every visited point, starts included, ``[P, d]`` (detached);
            a start that did not move in a step adds no duplicate point.
        final: Last point of each trajectory ``[B, d]``.
        final_values: ``f`` at the final points ``[B]``.
        steps: Descent steps taken.
        converged: Whether the batch met the pairwise-distance test.
        spread: Largest pairwise distance of the final points.
        model_evaluations: Points at which ``f`` was evaluated (cost).
    """

    points: torch.Tensor
    final: torch.Tensor
    final_values: torch.Tensor
    steps: int
    converged: bool
    spread: float
    model_evaluations: int


def _value_and_grad(f: ModelFn, x: torch.Tensor):
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        value = f(xg)
        (grad,) = torch.autograd.grad(value.sum(), xg)
    return value.detach(), grad.detach()


def _values(f: ModelFn, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return f(x).detach()


def max_pairwise_distance(x: torch.Tensor) -> float:
    """Largest Euclidean distance between two rows of ``x [B, d]``."""
    if x.shape[0] < 2:
        return 0.0
    return float(torch.cdist(x, x).max())


def descend(f: ModelFn, starts: torch.Tensor, config: Optional[DescentConfig] = None) -> DescentPath:
    """Run batched gradient descent with Armijo backtracking from ``starts``.

    Each start keeps its own step size ``t``: a trial ``x - t grad f(x)`` is
    accepted when ``f`` decreases by at least ``c t ||grad f||^2``; otherwise
    ``t`` shrinks (only the rejected rows are re-evaluated). After acceptance
    ``t`` grows by ``config.grow``. The descent stops when the largest pairwise
    distance of the batch drops below ``config.eps`` or after
    ``config.max_steps`` steps.

    Args:
        f: Model, ``x [B, d] -> [B]``, differentiable in ``x``.
        starts: Start points ``[B, d]``.
        config: Descent settings (defaults if ``None``).

    Returns:
        A :class:`DescentPath` with every visited point ``[P, d]``.
    """
    cfg = config or DescentConfig()
    if starts.dim() != 2 or starts.shape[0] == 0:
        raise ValueError(f"descend expects starts of shape [B, d] with B >= 1, got {tuple(starts.shape)}")
    x = starts.detach().clone()
    b = x.shape[0]
    step = torch.full((b,), float(cfg.initial_step), dtype=x.dtype, device=x.device)
    visited = [x.clone()]
    evaluations = 0
    value, grad = _value_and_grad(f, x)
    evaluations += b
    spread = max_pairwise_distance(x)
    converged = spread < cfg.eps
    steps = 0
    while not converged and steps < cfg.max_steps:
        gnorm2 = (grad * grad).sum(dim=1)
        active = (step >= cfg.min_step) & (gnorm2 > 0)
        if not bool(active.any()):
            break
        new_x = x.clone()
        pending = active.clone()
        for _ in range(cfg.max_backtracks):
            idx = torch.nonzero(pending).flatten()
            if idx.numel() == 0:
                break
            trial = x[idx] - step[idx, None] * grad[idx]
            trial_value = _values(f, trial)
            evaluations += int(idx.numel())
            ok = trial_value <= value[idx] - cfg.armijo_c * step[idx] * gnorm2[idx]
            ok &= torch.isfinite(trial_value)
            accepted = idx[ok]
            new_x[accepted] = trial[ok]
            pending[accepted] = False
            rejected = idx[~ok]
            step[rejected] = step[rejected] * cfg.shrink
        moved = active & ~pending
        step = torch.where(moved, step * cfg.grow, step)
        x = new_x
        steps += 1
        if bool(moved.any()):
            visited.append(x[moved].clone())
        value, grad = _value_and_grad(f, x)
        evaluations += b
        spread = max_pairwise_distance(x)
        converged = spread < cfg.eps
    return DescentPath(
        points=torch.cat(visited, dim=0),
        final=x,
        final_values=value,
        steps=steps,
        converged=bool(converged),
        spread=spread,
        model_evaluations=evaluations,
    )
