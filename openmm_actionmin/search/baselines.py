"""Honest baselines for the action trainer, all under the same wall-clock budget.

Every function here takes ``(system, budget_s, seed)`` (plus an optional typed
config), works on the search variables ``z [B, d]`` of ``system.space``,
evaluates energies only through ``system.oracle`` (so force calls are counted
by the oracle's counters) and returns a :class:`~..result.Result` whose
``extra`` holds ``lowest_seen_positions`` / ``lowest_seen_energy`` (the lowest
raw energy among every point the method evaluated).

* :func:`adam_multistart`: the action paper's protocol (its appendix A.3)
  scaled to the budget: many starts in the box, a sweep of learning rates,
  Adam on the true energy, the lowest true energy wins.
* :func:`random_only`: the paper's ablation, a PLNet trained only by
  regression on fresh uniform samples; it *is* the action trainer with the
  path terms switched off (:meth:`.action.ActionConfig.random_only`).
* :func:`scipy_basinhopping`: ``scipy.optimize.basinhopping`` with L-BFGS-B
  quenches inside the box.
* :func:`cma_es`: CMA-ES (the ``cma`` package) with IPOP restarts.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..result import Result
from ..systems.base import System
from .action import ActionConfig, ActionTrainer


class _BudgetExhausted(Exception):
    """Raised inside a foreign optimiser's callback when the budget is spent."""


class _Tracker:
    """Time, force calls, the lowest energy seen and a sparse history."""

    def __init__(self, system: System, budget_s: float, history_every_s: float = 1.0) -> None:
        if not budget_s > 0:
            raise ValueError(f"budget_s must be positive, got {budget_s}")
        self.system = system
        self.budget_s = float(budget_s)
        self.history_every_s = history_every_s
        self.t0 = time.perf_counter()
        self.calls0 = system.oracle.counters.force_calls
        self.best_energy = math.inf
        self.best_z: Optional[torch.Tensor] = None
        self.history: List[Dict[str, Any]] = []
        self._last_row = -math.inf
        ref = system.reference_positions
        self.reference = None if ref is None else torch.as_tensor(ref, dtype=system.oracle.dtype)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def out_of_time(self) -> bool:
        return self.elapsed() >= self.budget_s

    def force_calls(self) -> int:
        return self.system.oracle.counters.force_calls - self.calls0

    def observe(self, z: torch.Tensor, energy: torch.Tensor) -> None:
        i = int(torch.argmin(energy))
        if float(energy[i]) < self.best_energy:
            self.best_energy = float(energy[i])
            self.best_z = z[i].detach().cpu().clone()

    def distance(self, z: Optional[torch.Tensor]) -> Optional[float]:
        if self.reference is None or z is None:
            return None
        space = self.system.space
        x = space.to_config(z.reshape(1, -1).to(space.lower.dtype)).cpu().to(self.reference.dtype)
        return float(torch.linalg.vector_norm(x[0] - self.reference.cpu()))

    def row(self, force: bool = False, **extra: Any) -> None:
        now = self.elapsed()
        if not force and now - self._last_row < self.history_every_s:
            return
        self._last_row = now
        row: Dict[str, Any] = {
            "wall_s": round(now, 4),
            "force_calls": self.force_calls(),
            "best_energy": self.best_energy,
        }
        if self.reference is not None:
            row["best_distance"] = self.distance(self.best_z)
        row.update(extra)
        self.history.append(row)

    def result(self, method: str, seed: int, z: torch.Tensor, energy: float, extra: Dict[str, Any]) -> Result:
        space = self.system.space
        to_np = lambda v: space.to_config(v.reshape(1, -1).to(space.lower.dtype))[0].detach().cpu().numpy()  # noqa: E731
        extra = dict(extra)
        extra["lowest_seen_positions"] = to_np(self.best_z)
        extra["lowest_seen_energy"] = self.best_energy
        return Result(
            positions=to_np(z),
            energy=float(energy),
            units=self.system.oracle.units,
            method=method,
            seed=seed,
            force_calls=self.force_calls(),
            wall_s=self.elapsed(),
            history=self.history,
            system=self.system.name,
            symbols=self.system.symbols,
            topology=self.system.topology,
            extra=extra,
        )


def _energy(system: System, z: torch.Tensor, tracker: _Tracker, chunk: int = 4096) -> torch.Tensor:
    """Raw energies ``[B]`` of search points ``z [B, d]`` (no gradient)."""
    out = []
    with torch.no_grad():
        for part in torch.split(z, chunk):
            e, _ = system.oracle.energy_and_forces(system.space.to_config(part), transform=None)
            out.append(e.to(z.device))
    energy = torch.cat(out)
    tracker.observe(z, energy)
    return energy


def _energy_and_grad(system: System, z: torch.Tensor, tracker: _Tracker) -> Tuple[torch.Tensor, torch.Tensor]:
    """Raw energies ``[B]`` and their gradients ``[B, d]`` in search variables."""
    with torch.enable_grad():
        zg = z.detach().requires_grad_(True)
        e = system.oracle.energy(system.space.to_config(zg), transform=None)
        (grad,) = torch.autograd.grad(e.sum(), zg)
    e = e.detach().to(z.device)
    tracker.observe(z, e)
    return e, grad.detach().to(z.device)


def _make_config(cls: type, config: Any, fields: Dict[str, Any]) -> Any:
    """``config`` itself, or ``cls(**fields)``; a clear error if both are given."""
    if config is not None and fields:
        raise TypeError(f"pass either config or {cls.__name__} fields ({', '.join(fields)}), not both")
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
    return config if config is not None else cls(**fields)


# ------------------------------------------------------------------ Adam
@dataclasses.dataclass
class AdamMultistartConfig:
    """Settings of :func:`adam_multistart`.

    Attributes:
        n_starts: Starts per learning rate (uniform in the box; the same
            starts for every learning rate).
        lr_fractions: Learning rates as fractions of the mean box half-width.
            The default, 0.0005..0.05, is the paper's 0.05..5.0 sweep in a box
            of half-width 100, thinned to seven values.
        max_steps: Adam steps per learning rate at most (the budget is split
            evenly over the learning rates still to run).
        project: Clip iterates into the box after every step.
    """

    n_starts: int = 1024
    lr_fractions: Sequence[float] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
    max_steps: int = 10000
    project: bool = True

    def __post_init__(self) -> None:
        if self.n_starts < 1 or self.max_steps < 1 or len(self.lr_fractions) == 0:
            raise ValueError("AdamMultistartConfig needs n_starts >= 1, max_steps >= 1 and at least one learning rate")
        if any(not lr > 0 for lr in self.lr_fractions):
            raise ValueError(f"AdamMultistartConfig.lr_fractions must be positive, got {tuple(self.lr_fractions)}")
        self.lr_fractions = tuple(float(v) for v in self.lr_fractions)


def adam_multistart(
    system: System, budget_s: float, seed: int = 0, config: Optional[AdamMultistartConfig] = None, **kwargs: Any
) -> Result:
    """Adam from many starts over a sweep of learning rates (paper, A.3).

    Rows of the batch are independent (Adam is elementwise). The budget is
    split evenly over the learning rates; the answer is the lowest-energy final
    point over all learning rates.

    Args:
        system: The landscape.
        budget_s: Wall-clock budget in seconds.
        seed: Seed of the starts.
        config: Settings (defaults if ``None``).
        **kwargs: Fields of :class:`AdamMultistartConfig` (only without
            ``config``).

    Returns:
        A :class:`Result` (method ``"adam"``); ``extra`` has the learning rate
        and steps of the winner and the steps run per learning rate.
    """
    cfg = _make_config(AdamMultistartConfig, config, kwargs)
    tracker = _Tracker(system, budget_s)
    space = system.space
    gen = torch.Generator().manual_seed(int(seed))
    starts = space.sample(cfg.n_starts, generator=gen)
    lower, upper = space.lower, space.upper
    scale = float((0.5 * (upper - lower)).mean())
    best_e, best_z, best_lr = math.inf, starts[0].clone(), None
    steps_run: Dict[str, int] = {}
    for k, frac in enumerate(cfg.lr_fractions):
        if tracker.out_of_time():
            break
        lr = frac * scale
        deadline = tracker.elapsed() + tracker.left() / (len(cfg.lr_fractions) - k)
        z = starts.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        steps = 0
        while steps < cfg.max_steps and tracker.elapsed() < deadline:
            e, grad = _energy_and_grad(system, z.detach(), tracker)
            opt.zero_grad(set_to_none=True)
            z.grad = grad.to(z.dtype)
            opt.step()
            if cfg.project:
                with torch.no_grad():
                    z.copy_(torch.maximum(torch.minimum(z, upper), lower))
            steps += 1
            tracker.row(lr=lr)
        final = _energy(system, z.detach(), tracker)
        i = int(torch.argmin(final))
        if float(final[i]) < best_e:
            best_e, best_z, best_lr = float(final[i]), z.detach()[i].clone(), lr
        steps_run[f"{lr:.6g}"] = steps
        tracker.row(force=True, lr=lr, lr_best_final=float(final[i]))
    if best_lr is None:
        e = _energy(system, starts[:1], tracker)
        best_e, best_z = float(e[0]), starts[0]
    return tracker.result(
        "adam", seed, best_z, best_e, {"best_lr": best_lr, "steps_per_lr": steps_run, "config": dataclasses.asdict(cfg)}
    )


# ------------------------------------------------------------ random only
def random_only(system: System, budget_s: float, seed: int = 0, **kwargs: Any) -> Result:
    """PLNet trained only by regression on fresh uniform samples (paper's ablation).

    This is :class:`~.action.ActionTrainer` with
    :meth:`~.action.ActionConfig.random_only`: same model, warm start,
    normalisation, optimiser and candidate read-off, no trajectories.

    Args:
        system: The landscape.
        budget_s: Wall-clock budget in seconds.
        seed: Seed.
        **kwargs: Other :class:`~.action.ActionConfig` fields.

    Returns:
        The trainer's :class:`Result` (method ``"random_only"``).
    """
    return ActionTrainer(system, ActionConfig.random_only(seed=seed, budget_s=budget_s, **kwargs)).run()


# ---------------------------------------------------------- basin hopping
@dataclasses.dataclass
class ScipyBasinHoppingConfig:
    """Settings of :func:`scipy_basinhopping`.

    Attributes:
        temperature: Metropolis temperature T, in oracle energy units.
        step_fraction: Initial random-displacement size as a fraction of the
            mean box half-width (scipy adapts it towards a 50 % acceptance).
        local_maxiter: L-BFGS-B iterations per quench.
    """

    temperature: float = 1.0
    step_fraction: float = 0.1
    local_maxiter: int = 200


@dataclasses.dataclass
class ScipyClusterBasinHoppingConfig:
    """Settings of :func:`scipy_basinhopping` on clusters, as it is usually called there.

    Reduced units (epsilon, sigma); quenches are unbounded L-BFGS-B, steps
    are SciPy's own uniform displacements of every coordinate (adapted by
    SciPy towards a 50 % acceptance).

    Attributes:
        temperature: Metropolis temperature T (epsilon).
        step_size: Initial half-width of the displacement (sigma).
        local_maxiter: L-BFGS-B iterations per quench (``None``: SciPy's default).
        target_tolerance: The run stops when a quenched energy is within this
            of the system's reference energy (if it has one).
    """

    temperature: float = 0.8
    step_size: float = 0.4
    local_maxiter: Optional[int] = None
    target_tolerance: float = 1e-4


class _BoxStep:
    """Uniform random displacement clipped to the box (scipy adapts ``stepsize``).

    A coordinate that a step takes past a wall is put on the wall.
    """

    def __init__(self, stepsize: float, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator) -> None:
        self.stepsize = stepsize
        self.lower, self.upper, self.rng = lower, upper, rng

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x + self.rng.uniform(-self.stepsize, self.stepsize, size=x.shape)
        return np.clip(x, self.lower, self.upper)


def _scipy_objective(system: System, tracker: _Tracker, row_info: Callable[[], Dict[str, Any]]):
    """SciPy's ``fun(x) -> (energy, gradient)`` on ``system``: counted by ``tracker``, a history row with
    ``row_info()`` per call, :class:`_BudgetExhausted` once the budget is spent."""
    space = system.space

    def fun(x: np.ndarray):
        if tracker.out_of_time():
            raise _BudgetExhausted
        z = torch.as_tensor(x, dtype=space.lower.dtype).reshape(1, -1).to(space.lower.device)
        e, g = _energy_and_grad(system, z, tracker)
        tracker.row(**row_info())
        return float(e[0]), g[0].cpu().numpy().astype(np.float64)

    return fun


def scipy_basinhopping(
    system: System, budget_s: float, seed: int = 0, config: Optional[ScipyBasinHoppingConfig] = None, **kwargs: Any
) -> Result:
    """``scipy.optimize.basinhopping`` with L-BFGS-B quenches on the true energy.

    Runs from one uniform start until the budget is spent (checked at every
    energy evaluation); if scipy stops on its own, it restarts from a new
    uniform start. The answer is the lowest energy evaluated. On a function
    the quenches are bounded to the box and steps are clipped to it
    (:class:`ScipyBasinHoppingConfig`); on a cluster it is called as it usually
    is there: unbounded quenches, SciPy's own steps, a stop at the reference
    energy (:class:`ScipyClusterBasinHoppingConfig`), from the system's
    ``start_positions`` when it has them.

    Args:
        system: The landscape.
        budget_s: Wall-clock budget in seconds.
        seed: Seed of the start and the steps.
        config: Settings (defaults if ``None``): a
            :class:`ScipyBasinHoppingConfig` for functions, a
            :class:`ScipyClusterBasinHoppingConfig` for clusters.
        **kwargs: Fields of that config (only without ``config``).

    Returns:
        A :class:`Result` (method ``"scipy_basinhopping"``).
    """
    from scipy.optimize import basinhopping

    if system.is_atomic:
        return _scipy_cluster_basinhopping(
            system, budget_s, seed, _make_config(ScipyClusterBasinHoppingConfig, config, kwargs)
        )
    cfg = _make_config(ScipyBasinHoppingConfig, config, kwargs)
    tracker = _Tracker(system, budget_s)
    space = system.space
    lower = space.lower.cpu().numpy().astype(np.float64)
    upper = space.upper.cpu().numpy().astype(np.float64)
    rng = np.random.default_rng(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    first_step = cfg.step_fraction * float(np.mean(0.5 * (upper - lower)))
    # scipy adapts the step by rescaling take_step.stepsize; its own ``stepsize`` argument is
    # unused when take_step is given, so every (re)start resets the attribute instead.
    step = _BoxStep(first_step, lower, upper, rng)
    quenches = [0]

    fun = _scipy_objective(system, tracker, lambda: {"quenches": quenches[0], "stepsize": step.stepsize})

    def callback(x, f, accept):
        quenches[0] += 1
        return tracker.out_of_time()

    restarts = 0
    try:
        while not tracker.out_of_time():
            x0 = space.sample(1, generator=gen)[0].cpu().numpy().astype(np.float64)
            step.stepsize = first_step
            basinhopping(
                fun,
                x0,
                niter=10**9,
                T=cfg.temperature,
                minimizer_kwargs={
                    "method": "L-BFGS-B",
                    "jac": True,
                    "bounds": list(zip(lower, upper)),
                    "options": {"maxiter": cfg.local_maxiter},
                },
                take_step=step,
                callback=callback,
                rng=rng,
            )
            restarts += 1
    except _BudgetExhausted:
        pass
    if tracker.best_z is None:
        _energy(system, space.sample(1, generator=gen), tracker)
    tracker.row(force=True, quenches=quenches[0], stepsize=step.stepsize)
    return tracker.result(
        "scipy_basinhopping",
        seed,
        tracker.best_z,
        tracker.best_energy,
        {
            "quenches": quenches[0],
            "restarts": restarts,
            "final_stepsize": step.stepsize,
            "config": dataclasses.asdict(cfg),
        },
    )


def _scipy_cluster_basinhopping(
    system: System, budget_s: float, seed: int, cfg: ScipyClusterBasinHoppingConfig
) -> Result:
    """:func:`scipy_basinhopping` on a cluster (see there)."""
    from scipy.optimize import basinhopping

    tracker = _Tracker(system, budget_s)
    space = system.space
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    target = system.reference_energy
    state = {"quenches": 0, "restarts": 0, "time_to_target_s": None, "force_calls_to_target": None}
    options = {} if cfg.local_maxiter is None else {"maxiter": cfg.local_maxiter}

    fun = _scipy_objective(system, tracker, lambda: {"quenches": state["quenches"]})

    def callback(x, f, accept):
        state["quenches"] += 1
        if target is not None and f <= target + cfg.target_tolerance:
            state["time_to_target_s"], state["force_calls_to_target"] = tracker.elapsed(), tracker.force_calls()
            return True
        return tracker.out_of_time()

    try:
        while not tracker.out_of_time() and state["time_to_target_s"] is None:
            if state["restarts"] == 0 and system.start_positions is not None:
                x0 = system.start_positions.detach().reshape(-1).cpu().numpy().astype(np.float64)
            else:
                x0 = space.sample(1, generator=gen)[0].cpu().numpy().astype(np.float64)
            basinhopping(
                fun,
                x0,
                niter=10**9,
                T=cfg.temperature,
                stepsize=cfg.step_size,
                minimizer_kwargs={"method": "L-BFGS-B", "jac": True, "options": options},
                callback=callback,
                rng=rng,
            )
            state["restarts"] += 1
    except _BudgetExhausted:
        pass
    if tracker.best_z is None:
        _energy(system, space.sample(1, generator=gen), tracker)
    tracker.row(force=True, quenches=state["quenches"])
    success = None if target is None else bool(tracker.best_energy <= target + cfg.target_tolerance)
    return tracker.result(
        "scipy_basinhopping",
        seed,
        tracker.best_z,
        tracker.best_energy,
        {
            "quenches": state["quenches"],
            "restarts": state["restarts"],
            "success": success,
            "target_energy": target,
            "time_to_target_s": state["time_to_target_s"],
            "force_calls_to_target": state["force_calls_to_target"],
            "config": dataclasses.asdict(cfg),
        },
    )


# ------------------------------------------------------------------ CMA-ES
@dataclasses.dataclass
class CMAESConfig:
    """Settings of :func:`cma_es`.

    Attributes:
        sigma_fraction: Initial step size as a fraction of the mean box
            half-width.
        popsize: Initial population (``None``: cma's default 4 + 3 ln d).
        ipop_factor: Population growth factor at each restart (IPOP).
    """

    sigma_fraction: float = 0.3
    popsize: Optional[int] = None
    ipop_factor: float = 2.0


def cma_es(
    system: System, budget_s: float, seed: int = 0, config: Optional[CMAESConfig] = None, **kwargs: Any
) -> Result:
    """CMA-ES in the box (``cma`` package, bound transform) with IPOP restarts.

    Each generation is evaluated as one batch. The budget is checked every
    generation. The answer is the lowest energy evaluated.

    Args:
        system: The landscape.
        budget_s: Wall-clock budget in seconds.
        seed: Seed of the starts and of cma's sampler.
        config: Settings (defaults if ``None``).
        **kwargs: Fields of :class:`CMAESConfig` (only without ``config``).

    Returns:
        A :class:`Result` (method ``"cma"``).
    """
    import cma

    cfg = _make_config(CMAESConfig, config, kwargs)
    tracker = _Tracker(system, budget_s)
    space = system.space
    dtype = space.lower.dtype
    lower = space.lower.cpu().numpy().astype(np.float64)
    upper = space.upper.cpu().numpy().astype(np.float64)
    gen = torch.Generator().manual_seed(int(seed))
    sigma0 = cfg.sigma_fraction * float(np.mean(0.5 * (upper - lower)))
    popsize = cfg.popsize
    restarts = generations = 0
    while not tracker.out_of_time():
        x0 = space.sample(1, generator=gen)[0].cpu().numpy().astype(np.float64)
        opts = {
            "bounds": [lower.tolist(), upper.tolist()],
            "seed": int(seed) * 1000 + restarts + 1,
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
        }
        if popsize is not None:
            opts["popsize"] = int(popsize)
        es = cma.CMAEvolutionStrategy(x0, sigma0, opts)
        while not es.stop() and not tracker.out_of_time():
            xs = es.ask()
            z = torch.as_tensor(np.asarray(xs), dtype=dtype).to(space.lower.device)
            e = _energy(system, z, tracker)
            es.tell(xs, e.cpu().numpy().astype(np.float64).tolist())
            generations += 1
            tracker.row(restart=restarts, popsize=int(es.popsize))
        popsize = int(math.ceil(es.popsize * cfg.ipop_factor))
        restarts += 1
    if tracker.best_z is None:
        _energy(system, space.sample(1, generator=gen), tracker)
    tracker.row(force=True, restart=restarts)
    return tracker.result(
        "cma",
        seed,
        tracker.best_z,
        tracker.best_energy,
        {"restarts": restarts, "generations": generations, "config": dataclasses.asdict(cfg)},
    )


#: The baselines by benchmark name.
BASELINES = {
    "adam": adam_multistart,
    "random_only": random_only,
    "scipy_basinhopping": scipy_basinhopping,
    "cma": cma_es,
}
