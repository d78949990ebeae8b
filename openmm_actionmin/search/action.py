"""The action-functional trainer (the paper's Algorithm 1, with its fixes).

A PLNet ``f`` (one stationary point by construction) is trained so that the
paths gradient descent on ``f`` follows from uniform starts match the true
energy ``U`` along them (the action, approximated by a mean squared energy
error). Each round the model's unique minimiser ``x*`` is the candidate global
minimum; the best candidate by true energy is kept.

What this module adds to the paper's algorithm (all switchable in
:class:`ActionConfig`):

* **Energy normalisation.** The model regresses
  ``y = (T(U) - m) / s`` where ``T`` is a :class:`~..oracles.base.FiniteEnergy`
  transform (absurd energies are log-compressed, not clipped) and ``m``, ``s``
  are the mean and standard deviation of ``T(U)`` over the warm-start samples.
* **Fix 1, gradient matching** (``grad_match_weight``): penalise
  ``||grad f - grad y||^2`` at the path points, divided by the batch mean of
  ``||grad y||^2`` (a relative error, so the weight does not depend on units).
* **Fix 2, fresh random samples** (``fresh_weight``): every round also
  regresses ``f`` on ``fresh_batch`` new uniform samples, so the model cannot
  drift away from ``U`` where no path goes.
* **Armijo backtracking** in the inner descent (:mod:`.descent`), so paths
  really reach ``x*``.
* **Box handling.** The model works on scaled variables
  ``s = (z - center) / half_width`` (the box is ``[-1, 1]^d``). A minimiser
  outside the box is clipped to the box for evaluation, and while it lies
  outside, the loss gains ``box_penalty_weight * 1/2 ||g(clip(s*))||^2``:
  it is zero exactly when the clipped point is the model's minimiser, so it
  pulls ``x*`` back into the box. With ``region_penalty = k`` the same penalty
  holds ``x*`` in the trust region widened ``k`` times (``SYNTHETIC_ACTION``:
  ``k = 1``).
* **The budget holds inside a round.** No round starts that the budget could
  not hold as long as the last one took, and inside a round the clock is read
  before every oracle batch, descent and training step: once ``budget_s`` has
  passed, the round is dropped and the run ends with the best candidate so far.
  The warm start evaluates its pool only until ``warm_start_max_fraction`` of
  the budget has passed (at least one batch).

The trainer works on the search variables ``z [B, d]`` of ``system.space``
and maps them to configurations with ``space.to_config``; it works unchanged
for clusters (a Box over ``[N, 3]``) and peptides (torsion spaces). Every
energy comes through ``system.oracle``, so force calls are counted there.

Random-sample-only training (the paper's ablation) is this trainer with
``action_weight = 0`` and ``grad_match_weight = 0``: see
:meth:`ActionConfig.random_only`. The settings and their presets live in
:mod:`.action_config` (re-exported here).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .. import checkpoints
from ..fileio import atomic_write_text
from ..oracles.base import FiniteEnergy
from ..progress import progress_bar
from ..result import Result
from ..systems.base import System
from .action_config import BOWL_MODEL, SYNTHETIC_ACTION, ActionConfig
from .descent import DescentConfig, descend

__all__ = ["ActionConfig", "ActionTrainer", "BOWL_MODEL", "SYNTHETIC_ACTION", "write_history"]

#: Checkpoint format version (bump when the stored state changes).
CHECKPOINT_VERSION = 1


class _OutOfTime(Exception):
    """The budget ran out inside a round: the round is dropped."""


class IsotropicAdam(torch.optim.Optimizer):
    """Adam with one second moment per parameter tensor instead of one per coordinate.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) mean(g^2)``, step
    ``-lr m_hat / (sqrt(v_hat) + eps)``: the step points along the momentum, so
    an orthogonal change of coordinates rotates it with them (Adam's
    per-coordinate scaling does not commute with rotations). Its steps have the
    same overall size as Adam's, about ``lr`` per coordinate on average.

    Args:
        params: Parameters or parameter groups.
        lr: Learning rate.
        betas: Moment decay rates.
        eps: Denominator floor.
    """

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros((), dtype=p.dtype, device=p.device)
                state["step"] += 1
                state["m"].mul_(b1).add_(p.grad, alpha=1.0 - b1)
                state["v"].mul_(b2).add_((p.grad * p.grad).mean(), alpha=1.0 - b2)
                m_hat = state["m"] / (1.0 - b1 ** state["step"])
                v_hat = state["v"] / (1.0 - b2 ** state["step"])
                p.add_(m_hat / (v_hat.sqrt() + group["eps"]), alpha=-group["lr"])
        return None


def _fold(s: torch.Tensor) -> torch.Tensor:
    """Fold scaled variables back into ``[-1, 1]`` by reflection at the walls (a triangle wave)."""
    t = torch.remainder(s + 1.0, 4.0)
    return torch.where(t <= 2.0, t - 1.0, 3.0 - t)


def _on(t: Optional[torch.Tensor], device: torch.device) -> Optional[torch.Tensor]:
    """``t`` moved to ``device`` (``None`` stays ``None``)."""
    return None if t is None else t.to(device)


def write_history(history: Sequence[Dict[str, Any]], path: os.PathLike) -> Path:
    """Write a history atomically as JSON (``.json``) or CSV (``.csv``).

    Args:
        history: Rows (dicts of numbers), one per round.
        path: Output file; the extension picks the format.

    Returns:
        The path written.

    Raises:
        ValueError: for another extension.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".json":
        atomic_write_text(path, json.dumps(list(history), indent=1))
    elif ext == ".csv":
        keys: List[str] = []
        for row in history:
            keys.extend(k for k in row if k not in keys)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        for row in history:
            writer.writerow(row)
        atomic_write_text(path, buf.getvalue())
    else:
        raise ValueError(f"cannot write history to {path}: unknown extension {ext!r}; use .json or .csv")
    return path


class ActionTrainer:
    """Trains a PLNet by the action functional and returns the best candidate.

    Args:
        system: The landscape (oracle + search space [+ reference answer]).
        config: Settings (defaults if ``None``).

    Example::

        trainer = ActionTrainer(system, ActionConfig(seed=0, budget_s=120))
        result = trainer.run()
    """

    def __init__(self, system: System, config: Optional[ActionConfig] = None) -> None:
        self.system = system
        self.config = config or ActionConfig()
        self.space = system.space
        self.oracle = system.oracle
        self.dim = int(self.space.dim)
        self.device = torch.device(self.config.device) if self.config.device else self.oracle.device
        self.space_dtype = self.space.lower.dtype
        lower = self.space.lower.to(self.device)
        upper = self.space.upper.to(self.device)
        self.center = 0.5 * (lower + upper)
        self.half = 0.5 * (upper - lower)
        self.lower, self.upper = self.center - self.half, self.center + self.half
        ref = system.reference_positions
        self.reference = None if ref is None else torch.as_tensor(ref, dtype=self.oracle.dtype).to(self.oracle.device)
        self.model = None
        self.optimizer = None
        self.translation_optimizer: Optional[IsotropicAdam] = None
        self.generator = torch.Generator(device="cpu")
        self.transform: Optional[FiniteEnergy] = None
        self.energy_mean = 0.0
        self.energy_std = 1.0
        self.history: List[Dict[str, Any]] = []
        self.round = 0
        self.best: Optional[Dict[str, Any]] = None
        self.lowest: Optional[Dict[str, Any]] = None
        self.last_minimizer: Optional[torch.Tensor] = None
        self.last_candidate: Optional[torch.Tensor] = None
        self._time_offset = 0.0
        self._calls_offset = 0
        self._t0 = 0.0
        self._calls0 = 0
        self._fallback = 0
        self._stoppable = False
        self._selection_noise = self._make_selection_noise()
        self.initial_distance: Optional[float] = None
        self.region_center: Optional[torch.Tensor] = None
        self.region_radius = 1.0
        self.region_stall = 0

    @property
    def region_patience(self) -> int:
        """Stalled rounds before the trust region shrinks (``config.region_patience`` or ``max(5, d // 20)``)."""
        patience = self.config.region_patience
        return patience if patience is not None else max(5, self.dim // 20)

    # ------------------------------------------------------------ model
    def _model_config(self):
        from ..models.plnet import PLNetConfig

        cfg = self.config
        if cfg.model is not None:
            if int(cfg.model.dim) != self.dim:
                raise ValueError(
                    f"ActionConfig.model.dim is {cfg.model.dim} but the search space of {self.system.name!r} "
                    f"has {self.dim} variables; set dim={self.dim}"
                )
            return cfg.model
        center = 2.0 * torch.rand(self.dim, generator=self.generator, dtype=torch.float64) - 1.0
        return PLNetConfig(
            dim=self.dim,
            depth=cfg.model_depth,
            hidden=cfg.model_hidden,
            mu=cfg.model_mu,
            nu=cfg.model_nu,
            orthogonal=cfg.orthogonal,
            growth=cfg.model_growth,
            growth_min=cfg.model_growth_min,
            semi_orthogonal=cfg.model_semi_orthogonal,
            learn_bounds=cfg.model_learn_bounds,
            init_center=center,
            init_scale=1.0,
            seed=cfg.seed,
            device=self.device,
        )

    def _build_model(self) -> None:
        from ..models.plnet import PLNet

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = PLNet(self._model_config())
        self.model = model.to(self.device)
        self.model_dtype = next(self.model.parameters()).dtype
        if self.reference is not None:
            s0 = self._minimizer()
            self.initial_distance = self._distance(self._to_z(s0.clamp(-1.0, 1.0)))
        groups = self._param_groups()
        if self.config.translation_update == "isotropic":
            translation = [g for g in groups if g.get("name") == "translation"]
            groups = [g for g in groups if g.get("name") != "translation"]
            self.translation_optimizer = IsotropicAdam(translation, lr=self.config.lr)
        self.optimizer = torch.optim.Adam(groups, lr=self.config.lr)

    #: The parameter that translates the minimiser (see ``translation_region_power``).
    TRANSLATION_PARAMETER = "bilipnet.orthogonal.0.bias"
    #: Parameters that place the model's bowl (trained at ``placement_lr``).
    PLACEMENT_PARAMETERS = ("c", "log_q", "log_s", TRANSLATION_PARAMETER)

    def _param_groups(self) -> List[Dict[str, Any]]:
        """Optimiser parameter groups.

        The offset ``c`` gets ``offset_lr`` when that is set; the placement
        parameters (:attr:`PLACEMENT_PARAMETERS`) get ``placement_lr`` when
        that is set; everything else the common ``lr``. With
        ``translation_region_power > 0`` (or ``translation_update =
        "isotropic"``) the translation parameter gets a group of its own, whose
        rate :meth:`_update_region` keeps at the base rate times the
        trust-region radius to that power; an isotropic update steps that group
        with :class:`IsotropicAdam`.
        """
        cfg = self.config
        groups: Dict[str, List[torch.nn.Parameter]] = {"common": [], "placement": [], "offset": [], "translation": []}
        for name, p in self.model.named_parameters():
            if name == "c" and cfg.offset_lr is not None:
                groups["offset"].append(p)
            elif name == self.TRANSLATION_PARAMETER and (
                cfg.translation_region_power > 0 or cfg.translation_update == "isotropic"
            ):
                groups["translation"].append(p)
            elif name in self.PLACEMENT_PARAMETERS and cfg.placement_lr is not None:
                groups["placement"].append(p)
            else:
                groups["common"].append(p)
        out: List[Dict[str, Any]] = [{"params": groups["common"]}]
        if groups["placement"]:
            out.append({"params": groups["placement"], "lr": cfg.placement_lr})
        if groups["offset"]:
            out.append({"params": groups["offset"], "lr": cfg.offset_lr})
        if groups["translation"]:
            out.append({"params": groups["translation"], "lr": self._translation_lr(), "name": "translation"})
        return out

    def _translation_lr(self, radius: Optional[float] = None) -> float:
        """Learning rate of the translation group: the base rate times ``radius ** translation_region_power``
        (``radius`` defaults to the trust region's)."""
        base = self.config.placement_lr if self.config.placement_lr is not None else self.config.lr
        radius = self.region_radius if radius is None else radius
        return base * radius**self.config.translation_region_power

    def _refresh_translation_lr(self) -> None:
        """Set the translation group's rate (if there is one) to :meth:`_translation_lr`."""
        optimizers = [self.optimizer] + ([self.translation_optimizer] if self.translation_optimizer else [])
        for group in (g for opt in optimizers for g in opt.param_groups):
            if group.get("name") == "translation":
                group["lr"] = self._translation_lr()

    def _f(self, s: torch.Tensor) -> torch.Tensor:
        return self.model(s.to(self.model_dtype))

    # ------------------------------------------------------ coordinates
    def _to_scaled(self, z: torch.Tensor) -> torch.Tensor:
        return ((z.to(self.device) - self.center) / self.half).to(self.model_dtype)

    def _to_z(self, s: torch.Tensor) -> torch.Tensor:
        return (self.center + self.half * s.to(self.center.dtype)).to(self.space_dtype)

    def _sample(self, n: int) -> torch.Tensor:
        """Uniform samples ``[n, d]`` of the search space, or of the trust region when one is active."""
        if self.region_center is None:
            return self.space.sample(n, generator=self.generator).to(self.device)
        return self._sample_region(n)

    def _ball_radius(self, widen: float = 1.0) -> float:
        """Radius of the ball trust region in scaled variables: the cube's RMS radius ``radius * sqrt(d / 3)``."""
        return widen * self.region_radius * (self.dim / 3.0) ** 0.5

    def _region_bounds(self, widen: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper corners ``([d], [d])`` of the trust region: the box intersected with the cube
        of half-width ``widen * region_radius * half_width`` around ``region_center`` (search variables)."""
        c = self.region_center.to(self.device, self.center.dtype)
        lo = torch.maximum(self.lower, c - widen * self.region_radius * self.half)
        hi = torch.minimum(self.upper, c + widen * self.region_radius * self.half)
        return lo, hi

    def _sample_region(self, n: int) -> torch.Tensor:
        if self.config.region_shape == "ball":
            c = self._to_scaled(self.region_center).to(self.center.dtype)
            direction = torch.randn((n, self.dim), generator=self.generator, dtype=self.center.dtype)
            direction = direction / torch.linalg.vector_norm(direction, dim=1, keepdim=True)
            u = torch.rand((n, 1), generator=self.generator, dtype=self.center.dtype)
            s = c + (self._ball_radius() * u ** (1.0 / self.dim) * direction).to(self.device)
            return self._to_z(_fold(s))
        lo, hi = self._region_bounds()
        u = torch.rand((n, self.dim), generator=self.generator, dtype=self.center.dtype).to(self.device)
        return (lo + (hi - lo) * u).to(self.space_dtype)

    def _update_region(self, improved: bool) -> None:
        """Trust-region rule: centre on the best candidate, shrink after a stall."""
        cfg = self.config
        if cfg.region != "trust":
            return
        self.region_center = self.best["z"].to(self.device, self.center.dtype).reshape(-1)
        if improved:
            self.region_stall = 0
            return
        self.region_stall += 1
        if self.region_stall >= self.region_patience:
            self.region_radius = max(cfg.region_min, self.region_radius * cfg.region_shrink)
            self.region_stall = 0
            self._refresh_translation_lr()

    def _distance(self, z: torch.Tensor) -> Optional[float]:
        if self.reference is None:
            return None
        x = self.space.to_config(z.reshape(1, -1).to(self.space_dtype)).to(self.reference.device, self.reference.dtype)
        return float(torch.linalg.vector_norm(x[0] - self.reference))

    # ------------------------------------------------------- energies
    def _raw_energy(self, z: torch.Tensor) -> torch.Tensor:
        """Raw energies ``[B]`` of search points ``z [B, d]`` (no gradient)."""
        out = []
        with torch.no_grad():
            for chunk in torch.split(z.to(self.space_dtype), self.config.eval_batch):
                self._check_budget()
                energy, _ = self.oracle.energy_and_forces(self.space.to_config(chunk), transform=None)
                out.append(energy.to(self.device))
        energy = torch.cat(out)
        self._observe(z, energy)
        return energy

    def _targets(self, z: torch.Tensor, with_grad: bool):
        """Normalised targets of search points.

        Args:
            z: Search points ``[B, d]``.
            with_grad: Also return the gradient of the target with respect to
                the scaled variables.

        Returns:
            ``(y [B], dy_ds [B, d] or None)`` in the model's dtype.
        """
        if not with_grad:
            energy = self._raw_energy(z)
            return self._normalise(energy).to(self.model_dtype), None
        ys, grads, raws = [], [], []
        for chunk in torch.split(z.to(self.space_dtype), self.config.eval_batch):
            self._check_budget()
            with torch.enable_grad():
                zg = chunk.detach().requires_grad_(True)
                raw = self.oracle.energy(self.space.to_config(zg), transform=None)
                y = self._normalise(raw.to(self.device))
                (gz,) = torch.autograd.grad(y.sum(), zg)
            ys.append(y.detach())
            grads.append(gz.detach().to(self.device) * self.half)
            raws.append(raw.detach().to(self.device))
        self._observe(z, torch.cat(raws))
        return torch.cat(ys).to(self.model_dtype), torch.cat(grads).to(self.model_dtype)

    def _fit_normalisation(self, raw: torch.Tensor) -> None:
        """Choose the finite transform and the mean / std of the regression targets from ``raw [B]``."""
        self.transform = self._choose_transform(raw)
        transformed = self.transform(raw)[0] if self.transform is not None else raw
        self.energy_mean = float(transformed.mean())
        self.energy_std = float(transformed.std()) if float(transformed.std()) > 0 else 1.0

    def _normalise(self, energy: torch.Tensor) -> torch.Tensor:
        if self.transform is not None:
            energy = self.transform(energy)[0]
        return (energy - self.energy_mean) / self.energy_std

    def _observe(self, z: torch.Tensor, energy: torch.Tensor) -> None:
        """Keep the lowest raw energy seen among all evaluated points."""
        i = int(torch.argmin(energy))
        e = float(energy[i])
        if self.lowest is None or e < self.lowest["energy"]:
            self.lowest = {"energy": e, "z": z[i].detach().to(self.space_dtype).cpu().clone(), "round": self.round}

    def _choose_transform(self, energy: torch.Tensor) -> Optional[FiniteEnergy]:
        cfg = self.config
        if cfg.transform is not None:
            return cfg.transform
        if self.oracle.transform is not None:
            return self.oracle.transform
        if not cfg.auto_transform:
            return None
        finite = energy[energy < self.oracle.nonfinite_energy].double()
        if finite.numel() < 2:
            finite = energy.double()
        q25, q50, q75 = (
            float(v)
            for v in torch.quantile(finite, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=finite.device))
        )
        iqr = max(q75 - q25, 1e-12)
        return FiniteEnergy(threshold=q50 + 5.0 * iqr, scale=iqr)

    # --------------------------------------------------------- phases
    def _elapsed(self) -> float:
        return self._time_offset + (time.perf_counter() - self._t0)

    def _over_budget(self, fraction: float = 1.0) -> bool:
        """Whether ``fraction`` of ``budget_s`` has passed (never without a budget)."""
        budget = self.config.budget_s
        return budget is not None and self._elapsed() >= fraction * budget

    def _check_budget(self) -> None:
        """Inside a round: raise :class:`_OutOfTime` once the budget has passed (elsewhere: nothing)."""
        if self._stoppable and self._over_budget():
            raise _OutOfTime

    def _force_calls(self) -> int:
        return self._calls_offset + (self.oracle.counters.force_calls - self._calls0)

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.translation_optimizer is not None:
            self.translation_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        if self.translation_optimizer is not None:
            self.translation_optimizer.step()

    def _warm_start(self) -> Dict[str, float]:
        cfg = self.config
        z = self._sample(cfg.warm_start_samples)
        chunks = torch.split(z, cfg.eval_batch)
        raws = [self._raw_energy(chunks[0])]
        for chunk in chunks[1:]:  # the pool ends where the warm start's share of the budget does
            if self._over_budget(cfg.warm_start_max_fraction):
                break
            raws.append(self._raw_energy(chunk))
        raw = torch.cat(raws)
        z = z[: raw.shape[0]]
        self._fit_normalisation(raw)
        y = self._normalise(raw).to(self.model_dtype)
        if cfg.offset_init == "data":
            with torch.no_grad():
                self.model.c.fill_(float(y.min()))
        s = self._to_scaled(z)
        loss_value = float("nan")
        for _ in range(cfg.warm_start_steps):
            if cfg.budget_s is not None and self._elapsed() > cfg.warm_start_max_fraction * cfg.budget_s:
                break
            idx = torch.randint(0, s.shape[0], (min(cfg.warm_start_batch, s.shape[0]),), generator=self.generator)
            loss = torch.mean((self._f(s[idx]) - y[idx]) ** 2)
            self._step(loss)
            loss_value = float(loss.detach())
        return {
            "trajectory_loss": float("nan"),
            "regression_loss": loss_value,
            "grad_match_loss": float("nan"),
            "box_penalty": 0.0,
            "descent_steps": 0,
            "descent_converged": False,
            "path_points": 0,
        }

    def _round(self) -> Dict[str, float]:
        cfg = self.config
        info: Dict[str, float] = {"descent_steps": 0, "descent_converged": False, "path_points": 0}
        s_path = y_path = g_path = None
        if cfg.uses_paths:
            starts = self._to_scaled(self._sample(cfg.n_starts))
            self._check_budget()
            with self.model.frozen():
                path = descend(self._f, starts, cfg.descent)
            points = path.points
            if points.shape[0] > cfg.max_path_points:
                keep = torch.randperm(points.shape[0], generator=self.generator)[: cfg.max_path_points]
                points = points[keep.to(points.device)]
            s_path = points.clamp(-1.0, 1.0)
            y_path, g_path = self._targets(self._to_z(s_path), with_grad=cfg.grad_match_weight > 0)
            info.update(descent_steps=path.steps, descent_converged=path.converged, path_points=int(points.shape[0]))
        s_fresh = y_fresh = None
        if cfg.fresh_weight > 0:
            z_fresh = self._sample(cfg.fresh_batch)
            s_fresh = self._to_scaled(z_fresh)
            y_fresh, _ = self._targets(z_fresh, with_grad=False)
        box_point = self._penalty_point() if cfg.box_penalty_weight > 0 else None
        for _ in range(cfg.steps_per_round):
            self._check_budget()
            loss = torch.zeros((), dtype=self.model_dtype, device=self.device)
            traj = gm = reg = box = float("nan")
            if s_path is not None:
                if cfg.grad_match_weight > 0:
                    sg = s_path.detach().requires_grad_(True)
                    f_path = self._f(sg)
                    (grad_f,) = torch.autograd.grad(f_path.sum(), sg, create_graph=True)
                    denom = (g_path**2).sum(dim=1).mean().clamp_min(1e-12)
                    gm_loss = ((grad_f - g_path) ** 2).sum(dim=1).mean() / denom
                    loss = loss + cfg.grad_match_weight * gm_loss
                    gm = float(gm_loss.detach())
                else:
                    f_path = self._f(s_path)
                traj_loss = torch.mean((f_path - y_path) ** 2)
                if cfg.action_weight > 0:
                    loss = loss + cfg.action_weight * traj_loss
                traj = float(traj_loss.detach())
            if s_fresh is not None:
                reg_loss = torch.mean((self._f(s_fresh) - y_fresh) ** 2)
                loss = loss + cfg.fresh_weight * reg_loss
                reg = float(reg_loss.detach())
            if box_point is not None:
                box_loss = 0.5 * (self.model.g(box_point) ** 2).sum()
                loss = loss + cfg.box_penalty_weight * box_loss
                box = float(box_loss.detach())
            self._step(loss)
        info.update(
            trajectory_loss=traj, regression_loss=reg, grad_match_loss=gm, box_penalty=0.0 if box_point is None else box
        )
        return info

    def _penalty_bounds(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Scaled bounds ``([d], [d])`` that the model's minimiser is held in: the box ``[-1, 1]^d``,
        or the trust region widened ``region_penalty`` times once a region exists."""
        if (
            self.config.region_penalty > 0 and self.region_center is not None
        ):  # a centre exists only with region="trust"
            lo, hi = self._region_bounds(self.config.region_penalty)
            return self._to_scaled(lo), self._to_scaled(hi)
        ones = torch.ones(self.dim, dtype=self.model_dtype, device=self.device)
        return -ones, ones

    def _penalty_point(self) -> Optional[torch.Tensor]:
        """The last minimiser clipped to :meth:`_penalty_bounds` ``[1, d]``, or ``None`` when it lies inside."""
        if self.last_minimizer is None:
            return None
        s_star = self.last_minimizer.to(self.device, self.model_dtype).reshape(-1)
        if self.config.region_shape == "ball" and self.config.region_penalty > 0 and self.region_center is not None:
            c = self._to_scaled(self.region_center).reshape(-1)
            radius = self._ball_radius(self.config.region_penalty)
            offset = s_star - c
            norm = float(torch.linalg.vector_norm(offset))
            if norm <= radius and bool((s_star.abs() <= 1.0).all()):
                return None
            point = c + offset * min(1.0, radius / max(norm, 1e-300))
            return point.clamp(-1.0, 1.0).reshape(1, -1)
        lo, hi = self._penalty_bounds()
        if not bool(((s_star < lo) | (s_star > hi)).any()):
            return None
        return torch.maximum(torch.minimum(s_star, hi), lo).reshape(1, -1)

    def _minimizer(self) -> torch.Tensor:
        """The model's minimiser ``s* [d]`` in scaled variables.

        Falls back to a looser solve, then to a long descent from the last
        minimiser, if the inverse does not converge (counted in history as
        ``minimizer_fallback``).
        """
        from ..models.plnet import PLNetInverseError

        cfg = self.config
        self._fallback = 0
        try:
            with torch.no_grad():
                s_star = self.model.minimizer(tol=cfg.minimizer_tol, max_iter=cfg.minimizer_max_iter)
        except PLNetInverseError:
            self._fallback = 1
            try:
                with torch.no_grad():
                    s_star = self.model.minimizer(tol=1e3 * cfg.minimizer_tol, max_iter=5 * cfg.minimizer_max_iter)
            except PLNetInverseError:
                self._fallback = 2
                start = (
                    self.last_minimizer
                    if self.last_minimizer is not None
                    else torch.zeros(self.dim, device=self.device)
                )
                with self.model.frozen():
                    path = descend(self._f, start.reshape(1, -1).to(self.model_dtype), DescentConfig(max_steps=2000))
                s_star = path.final[0]
        return s_star.detach().reshape(-1).to(self.device)

    def _polish(self, z: torch.Tensor, energy: float):
        """Polish one candidate ``z [d]`` on the true energy; returns ``(z [d], energy)``."""
        cfg = self.config
        if cfg.polish_method == "lbfgs":
            from .local import minimize_batch

            x = self.space.to_config(z.reshape(1, -1).to(self.space_dtype)).detach()
            q = minimize_batch(
                self.oracle, x, "lbfgs", fmax=cfg.polish_fmax, max_steps=cfg.polish_steps, num_threads=None
            )
            e_q = float(q.energy[0])
            if e_q < energy:
                return self.space.from_config(q.x.to(self.space_dtype))[0].to(z.device), e_q
            return z, energy
        lower = self.space.lower.to(z.device, z.dtype)
        upper = self.space.upper.to(z.device, z.dtype)
        zp = z.clone().reshape(1, -1).requires_grad_(True)
        opt = torch.optim.Adam([zp], lr=cfg.polish_lr * float(self.half.mean()))
        best_z, best_e = z.clone(), energy
        for _ in range(cfg.polish_steps):
            opt.zero_grad(set_to_none=True)
            e = self.oracle.energy(self.space.to_config(zp), transform=None)
            e.sum().backward()
            opt.step()
            with torch.no_grad():
                zp.copy_(torch.maximum(torch.minimum(zp, upper), lower))
            with torch.no_grad():
                e_new = float(self._raw_energy(zp.detach())[0])
            if e_new < best_e:
                best_e, best_z = e_new, zp.detach()[0].clone()
        return best_z, best_e

    def _make_selection_noise(self) -> Optional[torch.Tensor]:
        """The fixed perturbation directions ``[select_samples, d]`` of the smoothed score (``None`` when off).

        Drawn from their own seeded generator, so the run's sample stream is the same with or without them.
        """
        cfg = self.config
        if cfg.select_smoothing <= 0:
            return None
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(cfg.seed) + 7919)
        noise = torch.randn((cfg.select_samples, self.dim), generator=gen, dtype=self.center.dtype)
        return noise.to(self.device)

    def _selection_score(self, z: torch.Tensor, energy: float) -> float:
        """What candidates are compared by: the raw ``energy``, or the smoothed energy around ``z [d]``."""
        if self._selection_noise is None:
            return energy
        offsets = self.config.select_smoothing * self.half * self._selection_noise
        points = z.reshape(1, -1).to(self.device, self.center.dtype) + offsets
        points = torch.maximum(torch.minimum(points, self.upper), self.lower)
        return float(self._raw_energy(points.to(self.space_dtype)).mean())

    def _candidate(self, info: Dict[str, float]) -> Dict[str, Any]:
        self._check_budget()
        s_star = self._minimizer()
        self._check_budget()
        self._stoppable = False  # a candidate whose solve finished in time is evaluated and kept
        self.last_minimizer = s_star
        in_box = bool((s_star.abs() <= 1.0).all())
        z_star = self._to_z(s_star.clamp(-1.0, 1.0))
        energy = float(self._raw_energy(z_star.reshape(1, -1))[0])
        if self.config.polish_steps > 0:
            z_star, energy = self._polish(z_star, energy)
        self.last_candidate = z_star.detach().cpu().clone()
        score = self._selection_score(z_star, energy)
        improved = self.best is None or score < self.best.get("score", self.best["energy"])
        if improved:
            self.best = {"energy": energy, "score": score, "z": z_star.detach().cpu().clone(), "round": self.round}
        self._update_region(improved)
        row: Dict[str, Any] = {
            "round": self.round,
            "wall_s": round(self._elapsed(), 4),
            "force_calls": self._force_calls(),
            "candidate_energy": energy,
            "best_energy": self.best["energy"],
            "candidate_score": score,
            "best_round": self.best["round"],
            "lowest_seen_energy": self.lowest["energy"],
            "candidate_in_box": in_box,
            "region_radius": self.region_radius,
            "minimizer_fallback": self._fallback,
            "growth_exponent": self.model.growth_exponent,
        }
        if self.reference is not None:
            row["candidate_distance"] = self._distance(z_star)
            row["best_distance"] = self._distance(self.best["z"].to(self.device))
            row["lowest_seen_distance"] = self._distance(self.lowest["z"].to(self.device))
        row.update(info)
        return row

    # ----------------------------------------------------- checkpoints
    def _state(self) -> Dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "seed": self.config.seed,
            "method": self.config.method_name,
            "dim": self.dim,
            "round": self.round,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "translation_optimizer": None
            if self.translation_optimizer is None
            else self.translation_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "transform": None if self.transform is None else dataclasses.asdict(self.transform),
            "energy_mean": self.energy_mean,
            "energy_std": self.energy_std,
            "history": copy.deepcopy(self.history),
            "best": self.best,
            "lowest": self.lowest,
            "last_minimizer": self.last_minimizer,
            "last_candidate": self.last_candidate,
            "region": {"center": self.region_center, "radius": self.region_radius, "stall": self.region_stall},
            "wall_s": self._elapsed(),
            "force_calls": self._force_calls(),
        }

    def save_checkpoint(self, path: Optional[os.PathLike] = None) -> Path:
        """Write the full training state atomically.

        Args:
            path: Checkpoint file (default: ``config.checkpoint_path``).

        Returns:
            The path written.
        """
        path = Path(path or self.config.checkpoint_path)
        checkpoints.save(path, self._state(), self._identity())
        return path

    def _identity(self) -> "checkpoints.RunIdentity":
        return checkpoints.run_identity(self.system, self.config.method_name, self.config.seed)

    def _load_checkpoint(self, path: Path) -> None:
        # load on the CPU: the generator states must stay CPU ByteTensors; the model and
        # optimizer states are copied onto the parameters' device by load_state_dict
        state = checkpoints.load(path, self._identity())
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"checkpoint {path} has version {state.get('version')}, expected {CHECKPOINT_VERSION}; delete it to "
                "start afresh"
            )
        if state["seed"] != self.config.seed or state["dim"] != self.dim or state["method"] != self.config.method_name:
            raise ValueError(
                f"checkpoint {path} belongs to another run (seed {state['seed']}, dim {state['dim']}, "
                f"method {state['method']!r}); this run has seed {self.config.seed}, dim {self.dim}, "
                f"method {self.config.method_name!r}. Use another checkpoint_path or delete the file."
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.translation_optimizer is not None and state.get("translation_optimizer") is not None:
            self.translation_optimizer.load_state_dict(state["translation_optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.transform = None if state["transform"] is None else FiniteEnergy(**state["transform"])
        self.energy_mean = state["energy_mean"]
        self.energy_std = state["energy_std"]
        self.history = state["history"]
        self.best = state["best"]  # candidates are kept on the CPU
        self.lowest = state["lowest"]
        self.last_minimizer = _on(state["last_minimizer"], self.device)  # model space, on the model's device
        self.last_candidate = state["last_candidate"]
        region = state.get("region") or {}
        self.region_center = _on(region.get("center"), self.device)
        self.region_radius = float(region.get("radius", 1.0))
        self.region_stall = int(region.get("stall", 0))
        self.round = state["round"]
        self._time_offset = state["wall_s"]
        self._calls_offset = state["force_calls"]

    # ------------------------------------------------------------ run
    def _done(self) -> bool:
        """Round limit reached, or the budget would not hold another round as long as the last one."""
        cfg = self.config
        if cfg.max_rounds is not None and self.round >= cfg.max_rounds:
            return True
        return cfg.budget_s is not None and self._elapsed() + getattr(self, "_round_s", 0.0) >= cfg.budget_s

    def run(self, *, resume: bool = True, on_round: Optional[Callable[[Dict[str, Any]], None]] = None) -> Result:
        """Train until the budget or round limit and return the best candidate.

        Args:
            resume: Continue from ``config.checkpoint_path`` when that file exists.
            on_round: Called with each history row after it is recorded.

        Returns:
            A :class:`Result`: ``positions`` is the best candidate (lowest true
            energy over rounds), ``history`` has one row per round (round 0 is
            the warm start), ``extra`` holds ``best_round``,
            ``lowest_seen_positions`` / ``lowest_seen_energy`` (lowest energy
            among every point evaluated), ``final_candidate_positions`` /
            ``final_candidate_energy`` (the last round's candidate),
            ``initial_candidate_distance`` (distance of the untrained model's
            minimiser to the reference, if any), the energy statistics and
            the config.
        """
        cfg = self.config
        self._t0 = time.perf_counter()
        self._calls0 = self.oracle.counters.force_calls
        self._time_offset = 0.0
        self._calls_offset = 0
        self._build_model()
        ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
        if resume and ckpt is not None and ckpt.exists():
            self._load_checkpoint(ckpt)
            self._t0 = time.perf_counter()
            self._calls0 = self.oracle.counters.force_calls
        else:
            info = self._warm_start()
            self._record(self._candidate(info), on_round)
        bar = None
        if cfg.progress:
            bar = progress_bar(total=cfg.max_rounds, initial=self.round, desc=cfg.method_name, unit="round")
        self._round_s = 0.0
        last_save = time.perf_counter()
        try:
            while not self._done():
                t_round = time.perf_counter()
                self.round += 1
                self._stoppable = True
                try:
                    info = self._round()
                    row = self._candidate(info)
                except _OutOfTime:  # the budget ran out inside the round: drop it, keep the best so far
                    self.round -= 1
                    break
                finally:
                    self._stoppable = False
                self._record(row, on_round)
                self._round_s = time.perf_counter() - t_round
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        best=f"{self.best['energy']:.4g}", cand=f"{self.history[-1]['candidate_energy']:.4g}"
                    )
                if ckpt is not None and (
                    self.round % cfg.checkpoint_every == 0
                    or (
                        cfg.checkpoint_interval_s is not None
                        and time.perf_counter() - last_save >= cfg.checkpoint_interval_s
                    )
                ):
                    self.save_checkpoint(ckpt)
                    last_save = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
        if ckpt is not None:
            self.save_checkpoint(ckpt)
        return self._result()

    def _record(self, row: Dict[str, Any], on_round) -> None:
        self.history.append(row)
        if on_round is not None:
            on_round(row)

    def _result(self) -> Result:
        z_best = self.best["z"].reshape(1, -1).to(self.space_dtype)
        z_low = self.lowest["z"].reshape(1, -1).to(self.space_dtype)
        positions = self.space.to_config(z_best.to(self.space.lower.device))[0].detach().cpu().numpy()
        lowest_positions = self.space.to_config(z_low.to(self.space.lower.device))[0].detach().cpu().numpy()
        z_last = self.last_candidate.reshape(1, -1).to(self.space_dtype)
        final_positions = self.space.to_config(z_last.to(self.space.lower.device))[0].detach().cpu().numpy()
        cfg_dict = dataclasses.asdict(self.config)
        cfg_dict["model"] = None if self.config.model is None else repr(self.config.model)
        cfg_dict["transform"] = None if self.config.transform is None else dataclasses.asdict(self.config.transform)
        extra = {
            "best_round": self.best["round"],
            "rounds": self.round,
            "initial_candidate_distance": self.initial_distance,
            "lowest_seen_positions": lowest_positions,
            "lowest_seen_energy": self.lowest["energy"],
            "final_candidate_positions": final_positions,
            "final_candidate_energy": self.history[-1]["candidate_energy"],
            "energy_mean": self.energy_mean,
            "energy_std": self.energy_std,
            "transform": None if self.transform is None else dataclasses.asdict(self.transform),
            "config": cfg_dict,
        }
        return Result(
            positions=positions,
            energy=float(self.best["energy"]),
            units=self.oracle.units,
            method=self.config.method_name,
            seed=self.config.seed,
            force_calls=self._force_calls(),
            wall_s=self._elapsed(),
            history=list(self.history),
            system=self.system.name,
            symbols=self.system.symbols,
            topology=self.system.topology,
            extra=extra,
        )
