"""Settings of the action trainer: :class:`ActionConfig` and the named presets.

``BOWL_MODEL`` (the round-bowl PLNet for synthetic functions) and ``SYNTHETIC_ACTION`` (the
bowl with a trust region: the action method on functions) are override dictionaries for
``ActionConfig(**preset, ...)``. The trainer that reads these settings is
:class:`~.action.ActionTrainer`. The measurements behind the defaults and presets are in
``docs/decisions.md`` ("Action trainer defaults").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from ..oracles.base import FiniteEnergy
from .descent import DescentConfig

__all__ = ["ActionConfig", "BOWL_MODEL", "SYNTHETIC_ACTION"]


#: The "round bowl" PLNet for synthetic functions: one monotone layer of 32 units with fixed
#: Lipschitz bounds 0.9-1.1 (``g`` near an isometry, so ``f`` is nearly a round bowl), a
#: semi-orthogonal factor from QR, the learned-growth head with an exponent floor of 0.5, a fast
#: rate (0.02) for the parameters that place the bowl, and candidates compared by their energy
#: smoothed over perturbations of 0.02 half-widths. Clusters and peptides keep the
#: :class:`ActionConfig` defaults. See ``docs/decisions.md``.
BOWL_MODEL: Dict[str, Any] = {
    "model_depth": 1,
    "model_hidden": 32,
    "model_mu": 0.9,
    "model_nu": 1.1,
    "model_growth": "learned",
    "model_learn_bounds": False,
    "placement_lr": 0.02,
    "model_growth_min": 0.5,
    "select_smoothing": 0.02,
    "model_semi_orthogonal": "qr",
}


#: The action method on synthetic functions (``minimize()`` on a function and the synthetic
#: benchmark's ``action``): :data:`BOWL_MODEL` with starts and fresh samples drawn from a trust
#: region around the best candidate, a translation rate that shrinks with the region, and the
#: minimiser held in the region by the box penalty. See ``docs/decisions.md``.
SYNTHETIC_ACTION: Dict[str, Any] = {
    **BOWL_MODEL,
    "region": "trust",
    "translation_region_power": 0.5,
    "region_penalty": 1.0,
}


@dataclasses.dataclass
class ActionConfig:
    """Settings of :class:`ActionTrainer`.

    The defaults are the general-purpose model used for clusters and peptides; synthetic
    functions use :data:`SYNTHETIC_ACTION`. Why each default is what it is:
    ``docs/decisions.md``.

    Attributes:
        seed: Seed of the model initialisation and every random draw.
        budget_s: Wall-clock budget in seconds (warm start included); ``None``
            for no time limit (then ``max_rounds`` must be set).
        max_rounds: Maximum training rounds after the warm start; ``None`` for
            no limit (then ``budget_s`` must be set).
        warm_start_samples: Uniform samples evaluated once for the warm start
            (and the energy statistics).
        warm_start_steps: Regression steps of the warm start.
        warm_start_batch: Minibatch size of the warm start steps.
        warm_start_max_fraction: The warm start stops early once it has used
            this fraction of ``budget_s``.
        n_starts: Starts per round (trajectory batch size).
        descent: Inner gradient-descent settings (Armijo backtracking,
            convergence ``eps`` in scaled units where the box is ``[-1, 1]^d``).
        max_path_points: Visited points kept per round (uniform subsample of
            the trajectories when there are more).
        steps_per_round: Optimiser steps per round on the round's data.
        lr: Adam learning rate.
        offset_lr: Adam learning rate of the PLNet offset ``c`` (the model's
            minimum value) in its own parameter group; ``None`` uses ``lr``.
        offset_init: Initial value of ``c``: ``"zero"`` (the PLNet default) or
            ``"data"`` (the lowest normalised warm-start energy).
        grad_clip: Gradient-norm clip (the paper could not train without it).
        action_weight: Weight of the path energy MSE (the action term).
        grad_match_weight: Weight of the relative gradient mismatch along paths.
        fresh_weight: Weight of the MSE on fresh uniform samples.
        fresh_batch: Fresh uniform samples per round.
        box_penalty_weight: Weight of the penalty on a minimiser outside the box.
        region_penalty: ``k > 0`` (needs ``region="trust"``): the box penalty
            also applies to a minimiser outside the trust region widened ``k``
            times (the penalty point is the minimiser clipped to that cube);
            ``0``: off. ``True`` reads as ``1``.
        transform: Finite-energy transform applied to raw energies; ``None``
            uses the oracle's own transform if it has one, else an automatic
            one (``auto_transform``), else none.
        auto_transform: Build a transform from the warm-start energies:
            threshold = median + 5 * IQR, scale = max(IQR, 1e-12).
        region: Where starts and fresh samples are drawn: ``"box"`` (the
            paper: uniformly in the whole box) or ``"trust"`` (uniformly in the
            box intersected with a cube of half-width ``radius * half_width``
            around the best candidate; the radius starts at 1 and shrinks by
            ``region_shrink`` after ``region_patience`` rounds without a better
            candidate, never below ``region_min``). The warm start always
            covers the whole box.
        region_shape: Shape of the trust region in the scaled variables (the
            box is ``[-1, 1]^d``): ``"cube"`` (the cube of half-width
            ``radius`` around the best candidate, intersected with the box;
            samples uniform in it) or ``"ball"`` (the ball of radius
            ``radius * sqrt(d / 3)``, the cube's RMS radius, around the best
            candidate; samples uniform in it and folded back into the box at
            its walls). Only ``"ball"`` is unchanged by a rotation of the
            coordinates; ``region_penalty`` holds the minimiser in the same
            shape.
        region_shrink: Factor in (0, 1) applied to the trust-region radius.
        region_patience: Rounds without improvement before the region shrinks;
            ``None``: ``max(5, d // 20)`` for ``d`` search variables.
        region_min: Smallest trust-region radius (fraction of the half-width).
        select_smoothing: ``0``: the best candidate is the one with the lowest
            true energy. ``> 0``: candidates are compared by their mean true
            energy at ``select_samples`` Gaussian perturbations of this
            standard deviation (a fraction of the box half-width; the same
            perturbations every round, clipped to the box). The extra
            evaluations count as force calls; the reported energy stays raw.
        select_samples: Perturbations per candidate when ``select_smoothing > 0``.
        polish_steps: Polishing iterations on the true energy from each
            round's candidate (0 = off), counted in force calls; the best
            *polished* candidate is kept.
        polish_method: ``"adam"`` (projected Adam inside the box, any space)
            or ``"lbfgs"`` (batched L-BFGS quench to ``polish_fmax``; needs a
            space with ``from_config``, e.g. a cluster's Cartesian box; the
            quenched structure may leave the box).
        polish_fmax: Force threshold of the ``"lbfgs"`` polish (oracle units).
        polish_lr: Polish step size as a fraction of the box half-width.
        model_depth: PLNet depth (monotone layers).
        model_hidden: PLNet hidden width.
        model_mu: PLNet lower Lipschitz bound.
        model_nu: PLNet upper Lipschitz bound.
        model_growth: PLNet output head: ``"quadratic"`` (``f = 1/2 ||g||^2 + c``)
            or ``"learned"`` (``f = h(1/2 ||g||^2) + c`` with a strictly
            increasing head whose far-field exponent is trained; see
            :class:`~openmm_actionmin.models.plnet.PLNet`).
        model_growth_min: Floor of the learned head's exponent (PLNet
            ``growth_min``; ignored by the quadratic head).
        model_semi_orthogonal: PLNet ``semi_orthogonal``: ``"cayley"`` or ``"qr"``.
        model_learn_bounds: Train the BiLipNet bounds (``False``: they stay at
            ``model_mu`` and ``model_nu``).
        placement_lr: Adam learning rate of the parameters that place the
            model's bowl (``c``, the head's ``log_q`` and ``log_s``, the bias of
            the first orthogonal layer); ``None``: the common ``lr``.
        translation_region_power: ``p > 0``: the learning rate of the first
            orthogonal layer's bias (which translates the minimiser) is
            ``placement_lr * radius ** p`` (``lr * radius ** p`` without a
            placement rate); ``0``: no scaling.
        translation_update: How the translation parameter steps: ``"adam"``
            (Adam, a step size per coordinate) or ``"isotropic"`` (Adam with
            one second moment shared by all its coordinates, so the step is
            the momentum direction itself and a rotation of the coordinates
            rotates the step with it).
        orthogonal: ``"cayley"``, ``"householder"`` or ``"auto"`` (PLNet's
            rule: Householder above D = 256).
        model: A full ``PLNetConfig`` overriding the ``model_*`` fields (its
            ``dim`` must equal the search dimension; inputs are the scaled
            variables in ``[-1, 1]^d``). By default the model's initial
            minimiser is drawn uniformly in the box from the run's generator.
        minimizer_tol: Tolerance of the model's minimiser solve.
        minimizer_max_iter: Iteration cap of the model's minimiser solve.
        eval_batch: Largest batch sent to the oracle at once.
        device: Device of the model; ``None`` uses the oracle's device.
        checkpoint_path: File of the resumable checkpoint (``None``: off).
        checkpoint_every: Write the checkpoint every this many rounds (and at
            the end of the run).
        checkpoint_interval_s: Also write it when this many seconds have
            passed since the last write (``None``: rounds only).
        progress: Show a tqdm progress bar.
        method_name: Name written into the :class:`Result`.
    """

    seed: int = 0
    budget_s: Optional[float] = 60.0
    max_rounds: Optional[int] = None
    warm_start_samples: int = 16384
    warm_start_steps: int = 300
    warm_start_batch: int = 256
    warm_start_max_fraction: float = 0.25
    n_starts: int = 32
    descent: DescentConfig = dataclasses.field(default_factory=DescentConfig)
    max_path_points: int = 1024
    steps_per_round: int = 5
    lr: float = 1e-3
    offset_lr: Optional[float] = None
    offset_init: str = "zero"
    grad_clip: float = 0.5
    action_weight: float = 1.0
    grad_match_weight: float = 0.0
    fresh_weight: float = 1.0
    fresh_batch: int = 256
    box_penalty_weight: float = 1.0
    region_penalty: float = 0.0
    transform: Optional[FiniteEnergy] = None
    auto_transform: bool = True
    region: str = "box"
    region_shape: str = "cube"
    region_shrink: float = 0.8
    region_patience: Optional[int] = None
    region_min: float = 0.05
    select_smoothing: float = 0.0
    select_samples: int = 32
    polish_steps: int = 0
    polish_method: str = "adam"
    polish_fmax: float = 1e-3
    polish_lr: float = 0.01
    model_depth: int = 2
    model_hidden: int = 256
    model_mu: float = 0.1
    model_nu: float = 2.0
    model_growth: str = "quadratic"
    model_growth_min: float = 0.0
    model_semi_orthogonal: str = "cayley"
    model_learn_bounds: bool = True
    placement_lr: Optional[float] = None
    translation_region_power: float = 0.0
    translation_update: str = "adam"
    orthogonal: str = "auto"
    model: Any = None
    minimizer_tol: float = 1e-5
    minimizer_max_iter: int = 1000
    eval_batch: int = 2048
    device: Optional[str] = None
    checkpoint_path: Optional[str] = None
    checkpoint_every: int = 10
    checkpoint_interval_s: Optional[float] = None
    progress: bool = False
    method_name: str = "action"

    def __post_init__(self) -> None:
        if self.budget_s is None and self.max_rounds is None:
            raise ValueError("ActionConfig needs budget_s or max_rounds (or both); both are None")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"ActionConfig.budget_s must be positive, got {self.budget_s}")
        if self.max_rounds is not None and self.max_rounds < 0:
            raise ValueError(f"ActionConfig.max_rounds must be >= 0, got {self.max_rounds}")
        if self.orthogonal not in ("auto", "cayley", "householder"):
            raise ValueError(
                f"ActionConfig.orthogonal must be 'auto', 'cayley' or 'householder', got {self.orthogonal!r}"
            )
        for name in ("action_weight", "grad_match_weight", "fresh_weight", "box_penalty_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"ActionConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.action_weight == 0 and self.grad_match_weight == 0 and self.fresh_weight == 0:
            raise ValueError(
                "ActionConfig: action_weight, grad_match_weight and fresh_weight are all 0; nothing to train"
            )
        if self.n_starts < 1 or self.fresh_batch < 1 or self.warm_start_samples < 2:
            raise ValueError("ActionConfig: n_starts and fresh_batch must be >= 1 and warm_start_samples >= 2")
        if self.region not in ("box", "trust"):
            raise ValueError(f"ActionConfig.region must be 'box' or 'trust', got {self.region!r}")
        if self.region_shape not in ("cube", "ball"):
            raise ValueError(f"ActionConfig.region_shape must be 'cube' or 'ball', got {self.region_shape!r}")
        if self.translation_update not in ("adam", "isotropic"):
            raise ValueError(
                f"ActionConfig.translation_update must be 'adam' or 'isotropic', got {self.translation_update!r}"
            )
        if (
            not 0 < self.region_shrink < 1
            or (self.region_patience is not None and self.region_patience < 1)
            or not 0 < self.region_min <= 1
        ):
            raise ValueError(
                "ActionConfig: region_shrink must be in (0, 1), region_patience >= 1 and region_min in (0, 1]"
            )
        if isinstance(self.region_penalty, bool):
            self.region_penalty = float(self.region_penalty)  # True: the trust region itself (factor 1)
        if self.region_penalty < 0:
            raise ValueError(f"ActionConfig.region_penalty must be >= 0 (0: off), got {self.region_penalty}")
        if self.region_penalty > 0 and self.region != "trust":
            raise ValueError(
                "ActionConfig.region_penalty needs region='trust' (with region='box' there is no "
                "trust region to hold the minimiser in); set region='trust' or region_penalty=0"
            )
        if self.translation_region_power < 0:
            raise ValueError(f"ActionConfig.translation_region_power must be >= 0, got {self.translation_region_power}")
        if self.select_smoothing < 0 or self.select_samples < 1:
            raise ValueError(
                f"ActionConfig: select_smoothing must be >= 0 and select_samples >= 1, got "
                f"{self.select_smoothing} and {self.select_samples}"
            )
        if self.polish_method not in ("adam", "lbfgs"):
            raise ValueError(f"ActionConfig.polish_method must be 'adam' or 'lbfgs', got {self.polish_method!r}")
        if self.placement_lr is not None and not self.placement_lr > 0:
            raise ValueError(f"ActionConfig.placement_lr must be positive or None, got {self.placement_lr}")
        from ..models.plnet import GROWTH_KINDS

        if self.model_growth not in GROWTH_KINDS:
            raise ValueError(f"ActionConfig.model_growth must be one of {GROWTH_KINDS}, got {self.model_growth!r}")
        if self.offset_lr is not None and not self.offset_lr > 0:
            raise ValueError(f"ActionConfig.offset_lr must be positive or None, got {self.offset_lr}")
        if self.offset_init not in ("zero", "data"):
            raise ValueError(f"ActionConfig.offset_init must be 'zero' or 'data', got {self.offset_init!r}")
        if self.checkpoint_every < 1:
            raise ValueError(f"ActionConfig.checkpoint_every must be >= 1, got {self.checkpoint_every}")

    @property
    def uses_paths(self) -> bool:
        """Whether rounds run the inner descent (action or gradient matching on)."""
        return self.action_weight > 0 or self.grad_match_weight > 0

    @classmethod
    def random_only(cls, **kwargs) -> "ActionConfig":
        """The paper's random-sample-only ablation: regression on fresh samples only.

        Args:
            **kwargs: Any other :class:`ActionConfig` field.

        Returns:
            A config with ``action_weight = grad_match_weight = 0``,
            ``fresh_weight = 1`` and ``method_name = "random_only"``.
        """
        kwargs.setdefault("method_name", "random_only")
        kwargs.setdefault("fresh_weight", 1.0)
        return cls(action_weight=0.0, grad_match_weight=0.0, **kwargs)
