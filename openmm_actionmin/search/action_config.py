"""Settings of the action trainer: :class:`ActionConfig` and the named presets.

``BOWL_MODEL`` (the round-bowl PLNet for synthetic functions) and ``SYNTHETIC_ACTION`` (the
bowl with a trust region, the benchmark's ``action``) are override dictionaries for
``ActionConfig(**preset, ...)``; each comment says which measurement chose it. The trainer that
reads these settings is :class:`~.action.ActionTrainer`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from ..oracles.base import FiniteEnergy
from .descent import DescentConfig

__all__ = ["ActionConfig", "BOWL_MODEL", "SYNTHETIC_ACTION"]


#: The "round bowl" PLNet used for the synthetic benchmark functions: one monotone
#: layer of 32 units with fixed bounds 0.9 <= Lip <= 1.1 (g stays near an isometry,
#: so f is nearly a round bowl), the learned-growth head, and the placement
#: parameters (offset, head, first bias) at lr 0.02. Chosen by measurement on shifted
#: Alpine 1 and Schaffer F7 at D = 100 (``bench/results/synthetic_d100_trust_bowl.md``,
#: ``synthetic_d100_bowl_box_partial_*.json``): the flexible default model (2 x 256
#: units, learned bounds, quadratic head) fits the samples as well but leaves its
#: minimiser where the fit does not pin it (380-410 from the minimum); the bowl lands at ~90. Apply with
#: ``ActionConfig(**BOWL_MODEL, ...)``; clusters and peptides keep the defaults.
#: The layer's semi-orthogonal Q [32, D] is the sign-fixed QR factor (``"qr"``), not the
#: Cayley map: at D = 1000 the Cayley layer, even isotropically initialised, drifted during
#: training to weigh coordinates 0-31 (19-47 % of the remaining squared error sat there);
#: with QR that share is 1-8 % and the D = 1000 medians went from 54.1 / 100.6 to 46.0 / 81.4
#: (``bench/results/synthetic_d1000_session9.md``; at D = 100, where the Cayley layer was not
#: biased, the change was mixed: 9.1 / 11.1 to 8.4 / 14.6).
#: Two settings came from D = 1000 (``bench/results/synthetic_d1000_1200s.md``): the head's
#: exponent has a floor of 0.5 (without one it fell to ~1e-3 once the trust region was small,
#: and the candidate diverged), and candidates are compared by their energy smoothed over 32
#: perturbations of 0.02 half-widths (the raw energy of these rugged functions often ranks a
#: farther point lower). The selection rule is shared by every bowl method, ``random_only``
#: included, so that the baseline picks its candidates the same way.
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


#: The action trainer's settings for synthetic functions (the synthetic benchmark's
#: ``action`` and ``minimize()`` on functions): the round-bowl model, with each round's
#: starts and fresh samples drawn from a trust region around the best candidate
#: (``region="trust"``). On shifted Alpine 1 and Schaffer F7 at D = 100 (seed 0, 120 s)
#: the trust region took the bowl from 90.0 / 95.5 to 19.7 / 11.5; with the flexible
#: model it had not helped (``bench/results/synthetic_d100_trust.md``). The rate that
#: translates the minimiser shrinks with the region (``translation_region_power = 0.5``):
#: at D = 1000 (seed 0, 450 s) it took Alpine 1 / Schaffer F7 from 67.5 / 151.3 to
#: 46.3 / 136.0 and the fixed-rate jitter of the candidate had caused most of the one-round
#: excursions (``bench/results/synthetic_d1000_seeds.md``). The box penalty also holds the
#: minimiser in the trust region (``region_penalty = 1``, session 11): at D = 1000 (450 s,
#: seeds 0-2) it took the unshifted medians from 44.1 / 111.5 to 66.5 / 78.2 and the shifted
#: ones from 46.0 / 81.4 to 70.5 / 34.2 (Alpine 1 / Schaffer F7; 68.6 / 34.2 in session 12's
#: run beside the baselines): worse on Alpine 1, but the only setting tried whose every
#: D = 1000 median is below 100; ``k = 3`` let Schaffer F7 run away again
#: (``bench/results/region_penalty_session11.md``,
#: ``bench/results/synthetic_d1000_noshift_session11.md``,
#: ``bench/results/synthetic_d1000_shifted_session12.md``).
SYNTHETIC_ACTION: Dict[str, Any] = {**BOWL_MODEL, "region": "trust", "translation_region_power": 0.5,
                                    "region_penalty": 1.0}


@dataclasses.dataclass
class ActionConfig:
    """Settings of :class:`ActionTrainer`.

    Defaults were chosen by measurement on shifted Alpine 1 and Schaffer F7 at
    D = 100 (box half-width 100, 90 s budgets, 3 seeds; see
    ``bench/results/action_fixes_d100.md``): fresh-sample regression (fix 2)
    on, gradient matching (fix 1) off (no measurable gain there, the relative
    gradient mismatch of these oscillating functions stays at ~1, and its
    double backward costs rounds), 5 optimiser steps per round, a warm-start
    pool of 16384 samples (4096 over-fitted: pool loss 0.27 vs 0.6 on fresh
    samples).

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
            Measured on shifted Alpine 1 (D = 100, 120 s, seed 0 only): 0.05
            gave 277.9 from the zero start (408.5 with ``lr``), but with
            ``offset_init="data"`` a faster ``c`` was worse (0.01: 248.8,
            0.003: 257.1, against 233.9; Schaffer F7 0.003: 206.2 against
            161.4) and the candidate swings far between rounds
            (``bench/results/synthetic_d100_offset.md``). Off by default.
        offset_init: Initial value of ``c``: ``"zero"`` (default, the PLNet
            default 0) or ``"data"`` (the lowest normalised warm-start energy).
            Energies are normalised to mean 0 over the warm-start samples, so
            ``c = 0`` puts the model's minimum value at the *average* energy:
            since ``f >= c`` everywhere, every sample below the average pulls
            the minimiser towards itself, and Adam moves ``c`` by only about
            ``lr`` per step. With the default (flexible) model on shifted
            Alpine 1 and Schaffer F7 (D = 100, 120 s, 3 seeds), ``"data"``
            brought the median distance from 362.2 to 262.9 and from 330.7 to
            197.4, closer in every seed
            (``bench/results/synthetic_d100_offset.md``). Not the default:
            clusters and peptides, the remaining users of the default model,
            were not measured with it.
        grad_clip: Gradient-norm clip (the paper could not train without it).
        action_weight: Weight of the path energy MSE (the action term).
        grad_match_weight: Weight of the relative gradient mismatch along paths.
        fresh_weight: Weight of the MSE on fresh uniform samples.
        fresh_batch: Fresh uniform samples per round.
        box_penalty_weight: Weight of the penalty on a minimiser outside the box.
        region_penalty: ``0`` (default): off. ``k > 0`` (needs
            ``region="trust"``): apply the box penalty to a minimiser outside
            the trust region widened ``k`` times (the cube of half-width
            ``k * radius * half_width`` around the region's centre, inside the
            box): the penalty point is the minimiser clipped to that cube, so
            the model cannot fling its minimiser far from the region its data
            covers. ``True`` reads as ``1``. Added because at D = 1000 the
            candidate ran away to 2000 from the minimum (out of the box) as the
            region began to shrink
            (``bench/results/synthetic_d1000_noshift_session10.md``);
            :data:`SYNTHETIC_ACTION` sets ``1`` (its comment gives the numbers).
        transform: Finite-energy transform applied to raw energies; ``None``
            uses the oracle's own transform if it has one, else an automatic
            one (``auto_transform``), else none.
        auto_transform: Build a transform from the warm-start energies:
            threshold = median + 5 * IQR, scale = max(IQR, 1e-12).
        region: Where starts and fresh samples are drawn. ``"box"`` (the
            paper): uniformly in the whole search box every round.
            ``"trust"``: uniformly in a trust region, the box intersected
            with a cube of half-width ``radius * half_width`` centred on the
            best candidate so far; the radius starts at 1 and is multiplied
            by ``region_shrink`` after ``region_patience`` rounds in a row
            without a better candidate (never below ``region_min``). The warm
            start always covers the whole box. Box-wide regression pulls the
            model's minimiser towards the box centre (a least-squares fit of
            an off-centre funnel is biased inwards); the trust region was
            meant to remove that bias step by step. With the flexible
            default model it does not help (D = 100: 411.6 / 380.3 against
            381.9 / 356.8 with box sampling; its minimiser does not follow a
            small region, ``bench/results/synthetic_d100_trust.md``); with the
            round bowl it does (19.7 / 10.0 against ~90-100,
            ``bench/results/synthetic_d100_trust_bowl.md``), so
            :data:`SYNTHETIC_ACTION` turns it on. Off by default.
        region_shrink: Factor in (0, 1) applied to the trust-region radius.
        region_patience: Rounds without improvement before the region shrinks;
            ``None`` (default): ``max(5, d // 20)`` for ``d`` search variables.
            At D = 1000 (shifted Alpine 1 / Schaffer F7, seed 0, 300 s) a patience
            of 5 shrank the region around a candidate that had not moved yet
            (641.7 / 646.4 from the minimum); 50 reached 113.2 / 280.0
            (``bench/results/synthetic_d1000_bowl_300s.md``). At D = 100 the rule
            gives the former 5.
        region_min: Smallest trust-region radius (fraction of the half-width).
        select_smoothing: ``0`` (default): the best candidate is the one with
            the lowest true energy. ``> 0``: candidates are compared by a
            smoothed energy, the mean true energy at ``select_samples``
            Gaussian perturbations of the candidate with this standard deviation
            (a fraction of the box half-width; the same perturbations every
            round, clipped to the box). On rugged landscapes (Alpine 1 is zero
            wherever sin(x_i) = -0.1; Schaffer F7's ripples change its value
            2x) a lower raw energy often marks a farther point; the smoothed
            energy follows the envelope instead. The extra evaluations are
            counted as force calls; the reported energy stays the raw one.
        select_samples: Perturbations per candidate when ``select_smoothing > 0``.
        polish_steps: Polishing iterations on the true energy from each
            round's candidate (0 = off); they are counted in force calls. The
            best *polished* candidate is kept.
        polish_method: ``"adam"`` (projected Adam inside the box, any space)
            or ``"lbfgs"`` (our batched L-BFGS quench to ``polish_fmax``; needs a
            space with ``from_config``, e.g. the Cartesian box of a cluster;
            the quenched structure may leave the box).
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
        model_semi_orthogonal: PLNet ``semi_orthogonal`` (``"cayley"`` or ``"qr"``;
            ``BOWL_MODEL`` sets ``"qr"``).
        model_learn_bounds: Train the BiLipNet bounds (``False``: they stay at
            ``model_mu``, ``model_nu``; with bounds close to each other the map
            ``g`` stays near an isometry and the model near a round bowl).
        placement_lr: Adam learning rate of the parameters that place the
            model's bowl: its minimum value ``c``, the head's ``log_q`` and
            ``log_s`` and the bias of the first orthogonal layer (which
            translates the minimiser). ``None``: the common ``lr``. With the
            common rate of 1e-3 the minimiser moves about 1e-3 box half-widths
            per step, too slow to follow the data in a few hundred steps.
        translation_region_power: ``p > 0`` scales the learning rate of the
            bias of the first orthogonal layer (the parameter that translates
            the model's minimiser) with the trust-region radius:
            ``placement_lr * radius ** p`` (or ``lr * radius ** p`` without a
            placement rate). ``0`` (default): no scaling. Adam moves each
            coordinate of that bias by about its learning rate per step
            whatever the gradient's size, so at a fixed rate the candidate
            jitters by a fixed amount per coordinate while the region it
            should settle in shrinks around it.
        orthogonal: ``"cayley"``, ``"householder"`` or ``"auto"`` (PLNet's
            rule: Householder above D = 256, since dense Cayley solves grow
            fast with the dimension).
        model: A full ``PLNetConfig`` overriding the ``model_*`` fields
            (its ``dim`` must equal the search dimension; inputs are the scaled
            variables in ``[-1, 1]^d``). By default the model's initial
            minimiser is drawn uniformly in the box from the run's generator.
        minimizer_tol: Tolerance of the model's minimiser solve.
        minimizer_max_iter: Iteration cap of the model's minimiser solve.
        eval_batch: Largest batch sent to the oracle at once.
        device: Device of the model; ``None`` uses the oracle's device.
        checkpoint_path: File of the resumable checkpoint (``None``: off).
        checkpoint_every: Write the checkpoint every this many rounds (and at
            the end of the run).
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
    orthogonal: str = "auto"
    model: Any = None
    minimizer_tol: float = 1e-5
    minimizer_max_iter: int = 1000
    eval_batch: int = 2048
    device: Optional[str] = None
    checkpoint_path: Optional[str] = None
    checkpoint_every: int = 10
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
            raise ValueError(f"ActionConfig.orthogonal must be 'auto', 'cayley' or 'householder', got {self.orthogonal!r}")
        for name in ("action_weight", "grad_match_weight", "fresh_weight", "box_penalty_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"ActionConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.action_weight == 0 and self.grad_match_weight == 0 and self.fresh_weight == 0:
            raise ValueError("ActionConfig: action_weight, grad_match_weight and fresh_weight are all 0; nothing to train")
        if self.n_starts < 1 or self.fresh_batch < 1 or self.warm_start_samples < 2:
            raise ValueError("ActionConfig: n_starts and fresh_batch must be >= 1 and warm_start_samples >= 2")
        if self.region not in ("box", "trust"):
            raise ValueError(f"ActionConfig.region must be 'box' or 'trust', got {self.region!r}")
        if not 0 < self.region_shrink < 1 or (self.region_patience is not None and self.region_patience < 1) or not 0 < self.region_min <= 1:
            raise ValueError("ActionConfig: region_shrink must be in (0, 1), region_patience >= 1 and region_min in (0, 1]")
        if isinstance(self.region_penalty, bool):
            self.region_penalty = float(self.region_penalty)  # True: the trust region itself (factor 1)
        if self.region_penalty < 0:
            raise ValueError(f"ActionConfig.region_penalty must be >= 0 (0: off), got {self.region_penalty}")
        if self.region_penalty > 0 and self.region != "trust":
            raise ValueError("ActionConfig.region_penalty needs region='trust' (with region='box' there is no "
                             "trust region to hold the minimiser in); set region='trust' or region_penalty=0")
        if self.translation_region_power < 0:
            raise ValueError(f"ActionConfig.translation_region_power must be >= 0, got {self.translation_region_power}")
        if self.select_smoothing < 0 or self.select_samples < 1:
            raise ValueError(f"ActionConfig: select_smoothing must be >= 0 and select_samples >= 1, got "
                             f"{self.select_smoothing} and {self.select_samples}")
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
