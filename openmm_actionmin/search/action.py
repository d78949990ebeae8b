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

The trainer works on the search variables ``z [B, d]`` of ``system.space``
and maps them to configurations with ``space.to_config``; it works unchanged
for clusters (a Box over ``[N, 3]``) and peptides (torsion spaces). Every
energy comes through ``system.oracle``, so force calls are counted there.

Random-sample-only training (the paper's ablation) is this trainer with
``action_weight = 0`` and ``grad_match_weight = 0``: see
:meth:`ActionConfig.random_only`.
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

from ..oracles.base import FiniteEnergy
from ..progress import progress_bar
from ..result import Result, atomic_torch_save, atomic_write_text
from ..systems.base import System
from .descent import DescentConfig, descend

#: Checkpoint format version (bump when the stored state changes).
CHECKPOINT_VERSION = 1


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
        self.optimizer = torch.optim.Adam(self._param_groups(), lr=self.config.lr)

    #: The parameter that translates the minimiser (see ``translation_region_power``).
    TRANSLATION_PARAMETER = "bilipnet.orthogonal.0.bias"
    #: Parameters that place the model's bowl (trained at ``placement_lr``).
    PLACEMENT_PARAMETERS = ("c", "log_q", "log_s", TRANSLATION_PARAMETER)

    def _param_groups(self) -> List[Dict[str, Any]]:
        """Optimiser parameter groups.

        The offset ``c`` gets ``offset_lr`` when that is set; the placement
        parameters (:attr:`PLACEMENT_PARAMETERS`) get ``placement_lr`` when
        that is set; everything else the common ``lr``. With
        ``translation_region_power > 0`` the translation parameter gets a group
        of its own, whose rate :meth:`_update_region` keeps at the base rate
        times the trust-region radius to that power.
        """
        cfg = self.config
        groups: Dict[str, List[torch.nn.Parameter]] = {"common": [], "placement": [], "offset": [], "translation": []}
        for name, p in self.model.named_parameters():
            if name == "c" and cfg.offset_lr is not None:
                groups["offset"].append(p)
            elif name == self.TRANSLATION_PARAMETER and cfg.translation_region_power > 0:
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
        return base * radius ** self.config.translation_region_power

    def _refresh_translation_lr(self) -> None:
        """Set the translation group's rate (if there is one) to :meth:`_translation_lr`."""
        for group in self.optimizer.param_groups:
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

    def _region_bounds(self, widen: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper corners ``([d], [d])`` of the trust region: the box intersected with the cube
        of half-width ``widen * region_radius * half_width`` around ``region_center`` (search variables)."""
        c = self.region_center.to(self.device, self.center.dtype)
        lo = torch.maximum(self.lower, c - widen * self.region_radius * self.half)
        hi = torch.minimum(self.upper, c + widen * self.region_radius * self.half)
        return lo, hi

    def _sample_region(self, n: int) -> torch.Tensor:
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
        q25, q50, q75 = (float(v) for v in torch.quantile(finite, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=finite.device)))
        iqr = max(q75 - q25, 1e-12)
        return FiniteEnergy(threshold=q50 + 5.0 * iqr, scale=iqr)

    # --------------------------------------------------------- phases
    def _elapsed(self) -> float:
        return self._time_offset + (time.perf_counter() - self._t0)

    def _force_calls(self) -> int:
        return self._calls_offset + (self.oracle.counters.force_calls - self._calls0)

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()

    def _warm_start(self) -> Dict[str, float]:
        cfg = self.config
        z = self._sample(cfg.warm_start_samples)
        raw = self._raw_energy(z)
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
        return {"trajectory_loss": float("nan"), "regression_loss": loss_value, "grad_match_loss": float("nan"),
                "box_penalty": 0.0, "descent_steps": 0, "descent_converged": False, "path_points": 0}

    def _round(self) -> Dict[str, float]:
        cfg = self.config
        info: Dict[str, float] = {"descent_steps": 0, "descent_converged": False, "path_points": 0}
        s_path = y_path = g_path = None
        if cfg.uses_paths:
            starts = self._to_scaled(self._sample(cfg.n_starts))
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
            loss = torch.zeros((), dtype=self.model_dtype, device=self.device)
            traj = gm = reg = box = float("nan")
            if s_path is not None:
                if cfg.grad_match_weight > 0:
                    sg = s_path.detach().requires_grad_(True)
                    f_path = self._f(sg)
                    (grad_f,) = torch.autograd.grad(f_path.sum(), sg, create_graph=True)
                    denom = (g_path ** 2).sum(dim=1).mean().clamp_min(1e-12)
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
        info.update(trajectory_loss=traj, regression_loss=reg, grad_match_loss=gm,
                    box_penalty=0.0 if box_point is None else box)
        return info

    def _penalty_bounds(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Scaled bounds ``([d], [d])`` that the model's minimiser is held in: the box ``[-1, 1]^d``,
        or the trust region widened ``region_penalty`` times once a region exists."""
        if self.config.region_penalty > 0 and self.region_center is not None:  # a centre exists only with region="trust"
            lo, hi = self._region_bounds(self.config.region_penalty)
            return self._to_scaled(lo), self._to_scaled(hi)
        ones = torch.ones(self.dim, dtype=self.model_dtype, device=self.device)
        return -ones, ones

    def _penalty_point(self) -> Optional[torch.Tensor]:
        """The last minimiser clipped to :meth:`_penalty_bounds` ``[1, d]``, or ``None`` when it lies inside."""
        if self.last_minimizer is None:
            return None
        s_star = self.last_minimizer.to(self.device, self.model_dtype).reshape(-1)
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
                start = self.last_minimizer if self.last_minimizer is not None else torch.zeros(self.dim, device=self.device)
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
            q = minimize_batch(self.oracle, x, "lbfgs", fmax=cfg.polish_fmax, max_steps=cfg.polish_steps, num_threads=None)
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
        s_star = self._minimizer()
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
        atomic_torch_save(self._state(), path)
        return path

    def _load_checkpoint(self, path: Path) -> None:
        # load on the CPU: the generator states must stay CPU ByteTensors; the model and
        # optimizer states are copied onto the parameters' device by load_state_dict
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint {path} has version {state.get('version')}, expected {CHECKPOINT_VERSION}; delete it to start afresh")
        if state["seed"] != self.config.seed or state["dim"] != self.dim or state["method"] != self.config.method_name:
            raise ValueError(
                f"checkpoint {path} belongs to another run (seed {state['seed']}, dim {state['dim']}, "
                f"method {state['method']!r}); this run has seed {self.config.seed}, dim {self.dim}, "
                f"method {self.config.method_name!r}. Use another checkpoint_path or delete the file."
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
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
        cfg = self.config
        if cfg.max_rounds is not None and self.round >= cfg.max_rounds:
            return True
        return cfg.budget_s is not None and self._elapsed() >= cfg.budget_s

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
        try:
            while not self._done():
                self.round += 1
                info = self._round()
                self._record(self._candidate(info), on_round)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(best=f"{self.best['energy']:.4g}", cand=f"{self.history[-1]['candidate_energy']:.4g}")
                if ckpt is not None and self.round % cfg.checkpoint_every == 0:
                    self.save_checkpoint(ckpt)
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


def action_search(system: System, budget_s: float, seed: int = 0, **kwargs) -> Result:
    """Run :class:`ActionTrainer` with a budget (convenience wrapper).

    Args:
        system: The landscape.
        budget_s: Wall-clock budget in seconds.
        seed: Seed.
        **kwargs: Other :class:`ActionConfig` fields.

    Returns:
        The trainer's :class:`Result`.
    """
    return ActionTrainer(system, ActionConfig(seed=seed, budget_s=budget_s, **kwargs)).run()
