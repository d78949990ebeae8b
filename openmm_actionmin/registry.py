"""The one registry of search methods.

Every method has one name, one signature ``run(system, config) -> Result``,
the kinds of target it accepts and a one-line description. The Python API
(:func:`openmm_actionmin.minimize`), the ``actionmin`` CLI, the benchmarks,
the ASE optimizers and the examples all look methods up here, so a name means
one algorithm through every door.

Kinds of target (:func:`target_kind`): ``"peptide"`` (an OpenMM system, kJ/mol
and nm), ``"cluster"`` (any other atomic system: reduced units or ASE's eV and
Angstrom) and ``"function"`` (a synthetic test function, dimensionless).

The default per kind (:data:`DEFAULTS`) and the measurement that decided it are
written down in ``docs/decisions.md``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Optional, Tuple

from .result import Result
from .systems.base import System

KINDS = ("cluster", "peptide", "function")

#: The default method per kind of target (see docs/decisions.md).
DEFAULTS: Dict[str, str] = {"cluster": "basin_hopping_lattice", "peptide": "basin_hopping", "function": "action"}

#: Largest seed accepted (seeds feed numpy and torch generators).
MAX_SEED = 2**32 - 1


@dataclasses.dataclass
class RunConfig:
    """Settings every method takes; the method's own settings go in ``options``.

    Attributes:
        seed: Seed of the run (a non-negative integer up to 2**32 - 1).
        budget_s: Wall-clock budget of the search in seconds (positive,
            finite; ``None``: no wall-clock limit, for runs bounded by a
            method option such as ``max_steps`` or ``max_rounds``).
        progress: Show a progress bar.
        checkpoint: Checkpoint file (``None``: none); an existing file of the
            same run is resumed, one of another run is refused.
        checkpoint_interval_s: Seconds between checkpoint writes.
        options: Fields of the method's settings dataclass for that kind of
            target (:meth:`Method.settings_for`); unknown names are refused.
    """

    seed: int = 0
    budget_s: Optional[float] = 60.0
    progress: bool = False
    checkpoint: Optional[str] = None
    checkpoint_interval_s: float = 60.0
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if self.budget_s is not None:
            check_budget(self.budget_s)
        check_positive(self.checkpoint_interval_s, "checkpoint_interval_s")


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes:
        name: Its one name.
        description: One line for ``--help`` and the docs.
        kinds: Kinds of target it accepts.
        run: ``run(system, config: RunConfig) -> Result``.
        settings: Kind -> the dataclass whose fields are the valid ``options``.
        checkpoints: Whether it writes and resumes checkpoints.
    """

    name: str
    description: str
    kinds: Tuple[str, ...]
    run: Callable[[System, RunConfig], Result]
    settings: Dict[str, type]
    checkpoints: bool = False

    def settings_for(self, kind: str) -> type:
        """The settings dataclass of this method on ``kind``."""
        return self.settings[kind]


# ---------------------------------------------------------------- validation
def check_seed(seed: Any, option: str = "seed") -> int:
    """``seed`` as an int, or a ValueError naming ``option``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        if isinstance(seed, float) and seed.is_integer():
            seed = int(seed)
        else:
            raise ValueError(f"{option} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{option} must be a whole number from 0 to {MAX_SEED}, got {seed}")
    return int(seed)


def check_budget(budget_s: Any, option: str = "budget_s") -> float:
    """``budget_s`` as a positive finite float, or a ValueError naming ``option``."""
    try:
        value = float(budget_s)
    except (TypeError, ValueError):
        raise ValueError(f"{option} must be a positive number of seconds, got {budget_s!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{option} must be a positive, finite number of seconds, got {budget_s!r}")
    return value


def check_positive(value: Any, option: str) -> float:
    """``value`` as a positive finite float, or a ValueError naming ``option``."""
    return check_budget(value, option)


def target_kind(system: System) -> str:
    """``"peptide"`` (OpenMM-backed), ``"cluster"`` (other atomic) or ``"function"``."""
    if not system.is_atomic:
        return "function"
    if type(system.oracle).__name__ == "OpenMMOracle":
        return "peptide"
    return "cluster"


def _options(
    method: str, kind: str, settings: type, options: Dict[str, Any], reserved: Tuple[str, ...] = ()
) -> Dict[str, Any]:
    """Check option names against the settings dataclass; return them unchanged."""
    valid = {f.name for f in dataclasses.fields(settings)} - set(reserved)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"method {method!r} on a {kind} has no option {unknown[0]!r}; its options are: {', '.join(sorted(valid))}"
        )
    return dict(options)


# -------------------------------------------------------------------- clusters
def _basin_hopping(system: System, config: RunConfig, lattice: bool) -> Result:
    from .search.basin_hopping import BasinHoppingConfig, basin_hopping, system_defaults
    from .search.lattices import lattice_walkers

    name = "basin_hopping_lattice" if lattice else "basin_hopping"
    opts = _options(name, "cluster", BasinHoppingConfig, config.options, _RESERVED)
    # settings scaled to a structure in its own units (an ase.Atoms), then the defaults for the
    # kind of cluster (unit-free: walkers, one-phase quenches); the user's win
    opts = {**system.metadata.get("basin_hopping_options", {}), **system_defaults(system), **opts}
    if lattice:
        nn = opts.get("lattice_nn", system.metadata.get("nn_distance"))
        if nn is None:
            opts["lattice_starts"] = 0  # no packing scale known: the blind search
        else:
            opts["lattice_nn"] = float(nn)
            opts.setdefault("lattice_starts", lattice_walkers(int(opts.get("n_walkers", BasinHoppingConfig.n_walkers))))
    else:
        opts.setdefault("lattice_starts", 0)
    cfg = BasinHoppingConfig(
        seed=config.seed,
        budget_s=config.budget_s,
        progress=config.progress,
        checkpoint_path=config.checkpoint,
        checkpoint_interval_s=config.checkpoint_interval_s,
        resume=config.checkpoint is not None,
        method_name=name,
        **opts,
    )
    starts = system.start_positions[None] if system.start_positions is not None else None
    return basin_hopping(system, cfg, starts=starts)


def _torsion_hopping(system: System, config: RunConfig) -> Result:
    from .proteins import run_method

    return run_method(system, "basin_hopping", **_peptide_kwargs("basin_hopping", config))


def _peptide_kwargs(name: str, config: RunConfig) -> Dict[str, Any]:
    from .proteins import PeptideSettings

    opts = _options(name, "peptide", PeptideSettings, config.options, _RESERVED)
    return dict(
        seed=config.seed,
        budget_s=config.budget_s,
        progress=config.progress,
        checkpoint_path=config.checkpoint,
        checkpoint_interval_s=config.checkpoint_interval_s,
        **opts,
    )


def _peptide(name: str) -> Callable[[System, RunConfig], Result]:
    def run(system: System, config: RunConfig) -> Result:
        from .proteins import run_method

        return run_method(system, name, **_peptide_kwargs(name, config))

    run.__name__ = f"run_{name}_peptide"
    return run


def _basin_hopping_any(system: System, config: RunConfig) -> Result:
    if target_kind(system) == "peptide":
        return _torsion_hopping(system, config)
    return _basin_hopping(system, config, lattice=False)


def _basin_hopping_lattice(system: System, config: RunConfig) -> Result:
    return _basin_hopping(system, config, lattice=True)


def _hybrid(system: System, config: RunConfig) -> Result:
    if target_kind(system) == "peptide":
        return _peptide("hybrid")(system, config)
    from .search.hybrid import HybridConfig, hybrid_search

    opts = _options("hybrid", "cluster", HybridConfig, config.options, _RESERVED)
    return hybrid_search(
        system, HybridConfig(seed=config.seed, budget_s=config.budget_s, progress=config.progress, **opts)
    )


def _action(system: System, config: RunConfig) -> Result:
    kind = target_kind(system)
    if kind == "peptide":
        return _peptide("action")(system, config)
    from .search.action import ActionConfig, ActionTrainer

    opts = _options("action", kind, ActionConfig, config.options, _RESERVED)
    if kind == "function":
        from .search.action_config import SYNTHETIC_ACTION

        opts = {**SYNTHETIC_ACTION, **opts}
    else:
        opts = {"polish_method": "lbfgs", "polish_steps": 2000, "polish_fmax": 1e-3, **opts}
    cfg = ActionConfig(
        seed=config.seed,
        budget_s=config.budget_s,
        progress=config.progress,
        checkpoint_path=config.checkpoint,
        checkpoint_interval_s=config.checkpoint_interval_s,
        method_name="action",
        **opts,
    )
    return ActionTrainer(system, cfg).run(resume=config.checkpoint is not None)


def _random_only(system: System, config: RunConfig) -> Result:
    kind = target_kind(system)
    if kind == "peptide":
        return _peptide("random_only")(system, config)
    from .search.action import ActionConfig, ActionTrainer
    from .search.action_config import BOWL_MODEL

    opts = _options("random_only", kind, ActionConfig, config.options, _RESERVED)
    cfg = ActionConfig.random_only(
        seed=config.seed,
        budget_s=config.budget_s,
        progress=config.progress,
        checkpoint_path=config.checkpoint,
        checkpoint_interval_s=config.checkpoint_interval_s,
        **{**BOWL_MODEL, **opts},
    )
    return ActionTrainer(system, cfg).run(resume=config.checkpoint is not None)


def _scipy_basinhopping(system: System, config: RunConfig) -> Result:
    from .search.baselines import ScipyBasinHoppingConfig, ScipyClusterBasinHoppingConfig, scipy_basinhopping

    kind = target_kind(system)
    cls = ScipyClusterBasinHoppingConfig if kind == "cluster" else ScipyBasinHoppingConfig
    opts = _options("scipy_basinhopping", kind, cls, config.options, _RESERVED)
    return scipy_basinhopping(system, config.budget_s, config.seed, **opts)


def _adam(system: System, config: RunConfig) -> Result:
    from .search.baselines import AdamMultistartConfig, adam_multistart

    opts = _options("adam", "function", AdamMultistartConfig, config.options, _RESERVED)
    return adam_multistart(system, config.budget_s, config.seed, **opts)


def _cma(system: System, config: RunConfig) -> Result:
    from .search.baselines import CMAESConfig, cma_es

    opts = _options("cma", "function", CMAESConfig, config.options, _RESERVED)
    return cma_es(system, config.budget_s, config.seed, **opts)


def _reparam(system: System, config: RunConfig) -> Result:
    from .search.reparam import PeptideReparamConfig, ReparamConfig, reparam_search

    kind = target_kind(system)
    settings = PeptideReparamConfig if kind == "peptide" else ReparamConfig
    opts = _options("reparam", kind, settings, config.options, _RESERVED)
    cfg = settings(seed=config.seed, budget_s=config.budget_s, progress=config.progress, method_name="reparam", **opts)
    return reparam_search(system, cfg)


#: Option names set from RunConfig, never through ``options``.
_RESERVED = (
    "seed",
    "budget_s",
    "progress",
    "checkpoint_path",
    "checkpoint_interval_s",
    "checkpoint_every",
    "resume",
    "method_name",
)


def _settings() -> Dict[str, Dict[str, type]]:
    """Method -> kind -> settings dataclass."""
    from .proteins import PeptideSettings
    from .search.action_config import ActionConfig
    from .search.baselines import (
        AdamMultistartConfig,
        CMAESConfig,
        ScipyBasinHoppingConfig,
        ScipyClusterBasinHoppingConfig,
    )
    from .search.basin_hopping import BasinHoppingConfig
    from .search.hybrid import HybridConfig
    from .search.reparam import PeptideReparamConfig, ReparamConfig

    return {
        "basin_hopping_lattice": {"cluster": BasinHoppingConfig},
        "basin_hopping": {"cluster": BasinHoppingConfig, "peptide": PeptideSettings},
        "hybrid": {"cluster": HybridConfig, "peptide": PeptideSettings},
        "action": {"cluster": ActionConfig, "peptide": PeptideSettings, "function": ActionConfig},
        "random_only": {"peptide": PeptideSettings, "function": ActionConfig},
        "openmm": {"peptide": PeptideSettings},
        "anneal": {"peptide": PeptideSettings},
        "scipy_basinhopping": {"cluster": ScipyClusterBasinHoppingConfig, "function": ScipyBasinHoppingConfig},
        "adam": {"function": AdamMultistartConfig},
        "cma": {"function": CMAESConfig},
        "reparam": {"cluster": ReparamConfig, "peptide": PeptideReparamConfig},
    }


_TABLE = (
    (
        "basin_hopping_lattice",
        "basin hopping whose walkers start from searched icosahedral, decahedral and fcc packings",
        ("cluster",),
        _basin_hopping_lattice,
        True,
    ),
    (
        "basin_hopping",
        "basin hopping: batched Cartesian moves (clusters) or torsion pivot moves (peptides), quench, Metropolis",
        ("cluster", "peptide"),
        _basin_hopping_any,
        True,
    ),
    (
        "hybrid",
        "the action trainer for part of the budget, then basin hopping from its candidates",
        ("cluster", "peptide"),
        _hybrid,
        False,
    ),
    (
        "action",
        "a PLNet trained with the action functional; its single minimiser is the answer (then polished)",
        ("cluster", "peptide", "function"),
        _action,
        True,
    ),
    (
        "random_only",
        "the action method's PLNet regressed on random samples only (ablation of the action term)",
        ("peptide", "function"),
        _random_only,
        True,
    ),
    (
        "openmm",
        "OpenMM's LocalEnergyMinimizer (L-BFGS) from the prepared input",
        ("peptide",),
        _peptide("openmm"),
        False,
    ),
    (
        "anneal",
        "OpenMM Langevin simulated annealing to 0 K, then LocalEnergyMinimizer",
        ("peptide",),
        _peptide("anneal"),
        False,
    ),
    (
        "scipy_basinhopping",
        "SciPy's basinhopping with L-BFGS-B quenches (bounded to the box on functions)",
        ("cluster", "function"),
        _scipy_basinhopping,
        False,
    ),
    ("adam", "Adam from many uniform starts over a sweep of learning rates", ("function",), _adam, False),
    ("cma", "CMA-ES (the cma package) with box bounds", ("function",), _cma, False),
    (
        "reparam",
        "Adam on a reparametrisation by the Hessian's slow modes (linear) or a graph network on them, then L-BFGS",
        ("cluster", "peptide"),
        _reparam,
        False,
    ),
)


def _build() -> Dict[str, Method]:
    settings = _settings()
    return {name: Method(name, desc, kinds, run, settings[name], ckpt) for name, desc, kinds, run, ckpt in _TABLE}


#: Every method by name.
METHODS: Dict[str, Method] = _build()

#: Method names in registry order (no import needed).
METHOD_NAMES: Tuple[str, ...] = tuple(row[0] for row in _TABLE)

#: Kind -> method names accepting it, in registry order.
METHODS_FOR: Dict[str, Tuple[str, ...]] = {k: tuple(row[0] for row in _TABLE if k in row[2]) for k in KINDS}


def describe() -> str:
    """``name (kinds): description`` lines for help texts."""
    return "\n".join(f"{name} ({', '.join(kinds)}): {desc}" for name, desc, kinds, _, _ in _TABLE)


def get_method(name: str, kind: Optional[str] = None) -> Method:
    """The method ``name``, checked against ``kind``.

    Raises:
        ValueError: an unknown name or one that does not accept ``kind``,
            listing the valid names.
    """
    if name not in METHOD_NAMES:
        valid = METHODS_FOR[kind] if kind else METHOD_NAMES
        where = f" for a {kind} target" if kind else ""
        raise ValueError(f"unknown method {name!r}{where}; choose one of {', '.join(valid)}")
    method = METHODS[name]
    if kind is not None and kind not in method.kinds:
        raise ValueError(
            f"method {name!r} does not run on a {kind}; for a {kind} choose one of {', '.join(METHODS_FOR[kind])}"
        )
    return method
