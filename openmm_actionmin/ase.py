"""ASE integration: global optimizers that behave like ASE's own, and a calculator.

* :class:`BasinHoppingMin`, :class:`LatticeBasinHoppingMin` and :class:`ActionMin` subclass
  :class:`ase.optimize.optimize.Optimizer`. They implement ``initialize()``,
  ``step()`` and ``read()`` (for restart files) and inherit everything else:
  ``run(fmax, steps)`` (True when converged), ``irun``, ``log``/``logfile``,
  ``attach`` observers and ``trajectory``.
* :class:`OracleCalculator` exposes any
  :class:`~openmm_actionmin.oracles.base.EnergyOracle` as an ASE calculator.

How a run proceeds. The energy comes from ``atoms.calc``. A calculator with an
exact batched twin (ASE's ``LennardJones``, see
:func:`~openmm_actionmin.oracles.ase.batched_twin`) is evaluated through the
twin, all walkers at once; an :class:`OracleCalculator` through its own batched
oracle; any other calculator through
:class:`~openmm_actionmin.oracles.ase.ASEOracle`, one configuration at a time
(or over ``calculator_workers`` threads with copies of the calculator), and
then with fewer walkers, fewer hops and quenches only as tight as ``fmax``.
Each of the first ``global_steps`` optimizer steps is one *round* of global
search started from the best structure so far (a chunk of batched basin
hopping, or of the action pipeline), after which the atoms are moved to the
best minimum found. Global rounds end early when ``budget_s`` seconds have
passed since the first step (a round in progress stops at the budget too) or
when ``target_energy`` is reached.
Later steps are local L-BFGS steps on the true energy that polish the best
minimum until the largest force is below ``fmax``. :meth:`gradient_converged` reports
False while global rounds remain (through ``gradient_converged``), so ``run`` does not stop at the first local
minimum it meets.

Refused: periodic structures (``atoms.pbc``; the search confines a cluster to a
sphere) and ASE constraints (``atoms.constraints``, e.g. ``FixAtoms``), each
with an error naming it.

Units are ASE's (eV, Angstrom). Step sizes, the container radius and the
temperature are scaled from the structure itself: the length scale is the
median nearest-neighbour distance of the (loosely quenched) starting atoms, the temperature
``0.2 |E_local / N|`` (``0.8 epsilon`` for an LJ cluster) unless given.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.optimize.optimize import Optimizer

from .oracles.ase import ASEOracle, calculator_oracle
from .oracles.base import ASE_UNITS, EnergyOracle
from .search.basin_hopping import MULTICOMPONENT_DEFAULTS, BasinHoppingConfig, basin_hopping
from .search.local import make_minimizer, minimize_batch
from .search.steps import Container
from .spaces import Box
from .systems.base import System


class OracleCalculator(Calculator):
    """An ASE calculator backed by an energy oracle.

    Args:
        oracle: Any atomic oracle; its units must be ASE's (eV, Angstrom) or
            the caller states ``length_scale`` (Angstrom per oracle length
            unit) and ``energy_scale`` (eV per oracle energy unit). For a
            reduced-unit LJ oracle use 1 and 1 (one sigma = one Angstrom).
        length_scale: Angstrom per oracle length unit.
        energy_scale: eV per oracle energy unit.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        oracle: EnergyOracle,
        *,
        length_scale: Optional[float] = None,
        energy_scale: Optional[float] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if oracle.n_atoms is None:
            raise ValueError(f"OracleCalculator needs an atomic oracle; {oracle!r} is a [B, D] function")
        if length_scale is None or energy_scale is None:
            if oracle.units != ASE_UNITS:
                raise ValueError(
                    f"oracle units are {oracle.units.energy}/{oracle.units.length}; pass length_scale (Angstrom per "
                    f"{oracle.units.length}) and energy_scale (eV per {oracle.units.energy})"
                )
            length_scale, energy_scale = 1.0, 1.0
        self.oracle = oracle
        self.length_scale = float(length_scale)
        self.energy_scale = float(energy_scale)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:  # noqa: D102
        super().calculate(atoms, properties, system_changes)
        x = torch.as_tensor(self.atoms.get_positions() / self.length_scale)[None]
        energy, forces = self.oracle.energy_and_forces(x, transform=None)
        e = float(energy[0]) * self.energy_scale
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["forces"] = forces[0].cpu().numpy().astype(float) * self.energy_scale / self.length_scale


def check_searchable_atoms(atoms) -> None:
    """Refuse an ``ase.Atoms`` that a global search cannot take, naming what is wrong.

    Raises:
        ValueError: no calculator, a periodic cell, or constraints (named).
    """
    if atoms.calc is None:
        raise ValueError("the Atoms object has no calculator: set atoms.calc first")
    if any(atoms.pbc):
        raise ValueError(
            f"the Atoms object is periodic (atoms.pbc={atoms.pbc.tolist()}); clusters are searched "
            "without a cell: set atoms.pbc = False"
        )
    if atoms.constraints:
        names = ", ".join(type(c).__name__ for c in atoms.constraints)
        raise ValueError(
            f"the Atoms object has constraints ({names}); a global search moves every atom freely: "
            "remove them (del atoms.constraints)"
        )


def species_types(symbols: Sequence[str]) -> Optional[List[int]]:
    """Atom types ``[N]`` for a structure of several elements (numbered in order of appearance).

    Basin hopping then adds exchange moves and uses its multi-component defaults
    (:func:`~openmm_actionmin.search.basin_hopping.system_defaults`). ``None``
    for a structure of one element.
    """
    index: Dict[str, int] = {}
    types = [index.setdefault(s, len(index)) for s in symbols]
    return types if len(index) > 1 else None


def _oracle_for(atoms, workers: int = 1) -> EnergyOracle:
    check_searchable_atoms(atoms)
    calc = atoms.calc
    if isinstance(calc, OracleCalculator):
        return calc.oracle
    return calculator_oracle(atoms, calc, workers=workers)


def _nearest_neighbour_distance(positions: np.ndarray) -> float:
    if len(positions) < 2:
        raise ValueError("global optimisation needs at least 2 atoms")
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def check_calculator_output(oracle: EnergyOracle, x: torch.Tensor) -> None:
    """Refuse a calculator whose energy or forces at the (valid) input structure are not finite.

    The positions were checked before (finite, no coincident atoms), so a
    non-finite result here is the calculator's: the error names it, instead of
    a search that quenches nothing.

    Args:
        oracle: The energy oracle wrapping the calculator.
        x: Input positions ``[1, N, 3]`` in the oracle's units.

    Raises:
        ValueError: The calculator raised, or returned NaN/inf, at the input.
    """
    counters = oracle.counters
    before, failures = counters.nonfinite, getattr(oracle, "failures", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        oracle.energy_and_forces(x.to(device=oracle.device, dtype=oracle.dtype))
    calculator = getattr(oracle, "calculator", None)
    name = type(calculator).__name__ if calculator is not None else type(oracle).__name__
    if getattr(oracle, "failures", 0) > failures:
        exc = oracle.last_exception
        raise ValueError(
            f"the calculator {name} raised {type(exc).__name__}: {exc} at the input structure; "
            "check that it works on these atoms (atoms.get_potential_energy())"
        ) from None
    if counters.nonfinite > before:
        raise ValueError(
            f"the calculator {name} returned a non-finite energy or forces (NaN or inf) at the input "
            "structure, whose positions are finite and distinct; check the calculator's parameters"
        )


def structure_scales(oracle: EnergyOracle, positions: np.ndarray) -> Dict[str, Any]:
    """Length and energy scales of a structure under its calculator, from a loose quench.

    A random start says little about bond lengths, so the start is first
    quenched (fmax 1e-2 in the oracle's units, then a hundredth of the
    structure's own force scale |E/N| / d when that is below 1); the median nearest-neighbour
    distance of the quenched structure is the length scale, its energy per
    atom the energy scale.

    Args:
        oracle: The energy oracle (any units).
        positions: Start positions ``[N, 3]``.

    Returns:
        ``{"nn_distance", "energy_per_atom", "positions" [N, 3], "energy"}``.
    """
    x = torch.as_tensor(np.asarray(positions, dtype=np.float64))[None]
    check_calculator_output(oracle, x)
    d0 = _nearest_neighbour_distance(x[0].numpy())
    quench = minimize_batch(oracle, x, "lbfgs", fmax=1e-2, max_steps=5000, max_step=0.2 * d0)
    # a weakly bound structure (argon: epsilon = 0.01 eV) has forces below 1e-2 eV/A far from its
    # minimum: quench again to a threshold set by its own force scale |E/N| / d
    xq = quench.x[0].cpu().numpy().reshape(-1, 3)
    force_scale = abs(float(quench.energy[0])) / len(xq) / _nearest_neighbour_distance(xq)
    if 0 < force_scale < 1.0:
        quench = minimize_batch(
            oracle, quench.x.reshape(x.shape), "lbfgs", fmax=1e-2 * force_scale, max_steps=5000, max_step=0.2 * d0
        )
        xq = quench.x[0].cpu().numpy().reshape(-1, 3)
    energy = float(quench.energy[0])
    return {
        "nn_distance": _nearest_neighbour_distance(xq),
        "energy_per_atom": energy / len(xq),
        "positions": xq,
        "energy": energy,
    }


def scaled_basin_hopping_options(
    n_atoms: int, nn_distance: float, energy_per_atom: float, fmax: Optional[float] = None
) -> Dict[str, Any]:
    """Basin-hopping settings in a structure's own units (ASE's eV and Angstrom, or any other).

    The cluster defaults are in reduced LJ units (sigma = 1, epsilon = 1); here
    lengths scale with ``nn_distance / 2^(1/6)`` (sigma of the LJ pair with that
    minimum) and the temperature is ``0.2 |energy_per_atom|`` (0.8 epsilon for
    an LJ cluster near its minimum); the compression constant scales as
    energy / length^2 and force thresholds as energy / length.

    Args:
        n_atoms: Atom count.
        nn_distance: Median nearest-neighbour distance of a quenched structure.
        energy_per_atom: Its energy per atom.
        fmax: The user's force threshold (quenches go no looser than a tenth of it).

    Returns:
        Fields of :class:`~openmm_actionmin.search.basin_hopping.BasinHoppingConfig`.
    """
    scale = nn_distance / 2 ** (1 / 6)
    fmax = 0.05 if fmax is None else fmax
    epsilon = max(0.25 * abs(energy_per_atom), 1e-6)  # the well depth whose 0.8 is the temperature
    defaults = BasinHoppingConfig()
    return {
        "temperature": 0.8 * epsilon,
        "compression": defaults.compression * epsilon / scale**2,
        "compression_fmax": defaults.compression_fmax * epsilon / scale,
        "step_size": 0.4 * scale,
        "quench_fmax": min(defaults.quench_fmax * epsilon / scale, 0.1 * fmax),
        "quench_max_step": 0.2 * scale,
        "container_radius": scale * Container.default_radius(n_atoms),
        "polish_fmax": 0.01 * fmax,
    }


class _GlobalOptimizer(Optimizer):
    """Shared machinery of the ASE global optimizers (see the module docstring)."""

    method = "basin_hopping"

    def __init__(
        self,
        atoms,
        *,
        global_steps: int = 10,
        hops_per_step: Optional[int] = None,
        n_walkers: Optional[int] = None,
        budget_s: Optional[float] = 30.0,
        calculator_workers: int = 1,
        seed: int = 0,
        temperature: Optional[float] = None,
        step_size: Optional[float] = None,
        target_energy: Optional[float] = None,
        restart: Optional[str] = None,
        logfile: Any = "-",
        trajectory: Optional[str] = None,
        **kwargs,
    ) -> None:
        """Create the optimizer.

        Args:
            atoms: The ``ase.Atoms`` to optimise (``atoms.calc`` gives energies).
            global_steps: Optimizer steps spent on global rounds before polishing.
            hops_per_step: Basin-hopping hops per walker in one global round
                (default 10 with a batched oracle, 4 with a calculator evaluated
                one configuration at a time).
            n_walkers: Parallel walkers of the batched search (default 16
                with a batched oracle, 4 otherwise and for a structure of
                several elements, where exchange moves and one-phase
                quenches are used as for any multi-component cluster).
            budget_s: Wall-clock seconds for the global rounds, counted from
                the first step (``None``: no limit); local polishing follows.
            calculator_workers: Threads evaluating a calculator that has no
                batched twin, each with its own copy (gains only for
                calculators that release the GIL).
            seed: Seed; round ``k`` uses ``seed + k``, so runs are reproducible.
            temperature: Metropolis temperature in eV (default: scaled, see
                the module docstring).
            step_size: Random-displacement size in Angstrom (default 0.36 times
                the nearest-neighbour distance).
            target_energy: Stop global rounds early at this energy (eV).
            restart: Restart file (JSON); a second optimizer given the same
                file continues where the first stopped.
            logfile: As in ASE (``"-"`` for stdout, ``None`` for silence).
            trajectory: As in ASE.
            **kwargs: Passed to :class:`ase.optimize.optimize.Optimizer`.
        """
        from .registry import check_budget

        self.global_steps = int(global_steps)
        self.budget_s = None if budget_s is None else check_budget(budget_s, "budget_s")
        self.seed = int(seed)
        self.temperature = temperature
        self.step_size = step_size
        self.target_energy = target_energy
        self.oracle = _oracle_for(atoms, int(calculator_workers))
        #: True when the oracle evaluates a whole batch at once (not one ASE calculation per configuration).
        self.batched = not isinstance(self.oracle, ASEOracle)
        self.hops_per_step = int(hops_per_step if hops_per_step is not None else (10 if self.batched else 4))
        self.types = species_types(atoms.get_chemical_symbols())
        if n_walkers is None:
            n_walkers = 16 if self.batched and self.types is None else MULTICOMPONENT_DEFAULTS["n_walkers"]
        self.n_walkers = int(n_walkers)
        self._started: Optional[float] = None
        super().__init__(atoms, restart=restart, logfile=logfile, trajectory=trajectory, **kwargs)

    # ----------------------------------------------------------- ASE hooks
    def initialize(self) -> None:
        """Start state: the current structure is the best known one."""
        self.best_positions = np.array(self.optimizable.get_x(), dtype=float).reshape(-1, 3)
        self.best_energy = float(self.oracle.energy(torch.as_tensor(self.best_positions)[None], transform=None)[0])
        self.rounds_done = 0
        self.local = None
        self._scale = None

    def read(self) -> None:
        """Load the state a previous run dumped to the restart file."""
        data = self.load()
        self.best_positions = np.asarray(data["best_positions"], dtype=float)
        self.best_energy = float(data["best_energy"])
        self.rounds_done = int(data["rounds_done"])
        self.local = None
        self._scale = data.get("length_scale")
        self._set_positions(self.best_positions)

    def step(self, forces=None) -> None:
        """One global round, or one local polishing step once they are done."""
        if self._started is None:
            self._started = time.perf_counter()
        if self._global_phase():
            self._global_round()
            self.rounds_done += 1
            self._set_positions(self.best_positions)
            self.local = None
        else:
            self._polish_step()
        self.dump(
            {
                "best_positions": self.best_positions.tolist(),
                "best_energy": self.best_energy,
                "rounds_done": self.rounds_done,
                "length_scale": getattr(self, "_scale", None),
            }
        )

    def gradient_converged(self, gradient) -> bool:
        """False while global rounds remain; then ASE's force criterion."""
        if self._global_phase():
            return False
        return super().gradient_converged(gradient)

    # ----------------------------------------------------------- internals
    def _global_phase(self) -> bool:
        reached = self.target_energy is not None and self.best_energy <= self.target_energy
        return self.rounds_done < self.global_steps and not reached and self._budget_left() > 0

    def _budget_left(self) -> float:
        """Seconds of ``budget_s`` left (infinite without a budget; the full budget before the first step)."""
        if self.budget_s is None:
            return math.inf
        if self._started is None:
            return self.budget_s
        return self.budget_s - (time.perf_counter() - self._started)

    def _set_positions(self, positions: np.ndarray) -> None:
        self.optimizable.set_x(np.asarray(positions, dtype=float).ravel())

    def _length_scale(self) -> float:
        """Median nearest-neighbour distance of the quenched start (Angstrom), computed once.

        The loosely quenched start (:func:`structure_scales`) is offered as a candidate.
        """
        if getattr(self, "_scale", None) is None:
            scales = structure_scales(self.oracle, self.best_positions)
            self._offer(scales["positions"], scales["energy"])
            self._scale = scales["nn_distance"]
        return self._scale

    def _system(self) -> System:
        x = self.best_positions
        n = len(x)
        scale = self._length_scale()
        centre = x.mean(axis=0)
        half = 0.5 * scale * (n / 0.5) ** (1.0 / 3.0)
        lower = np.tile(centre - half, n)
        upper = np.tile(centre + half, n)
        space = Box(torch.as_tensor(lower), torch.as_tensor(upper), (n, 3))
        return System(
            name=self.atoms.get_chemical_formula(),
            oracle=self.oracle,
            space=space,
            reference_energy=self.target_energy,
            types=self.types,
        )

    def _search_config(self) -> BasinHoppingConfig:
        n = len(self.best_positions)
        scaled = scaled_basin_hopping_options(n, self._length_scale(), self.best_energy / n, self.fmax)
        if self.temperature is not None:
            scaled["temperature"] = self.temperature
        if self.step_size is not None:
            scaled["step_size"] = self.step_size
        if self.types is not None:
            scaled["compression"] = MULTICOMPONENT_DEFAULTS["compression"]
        if not self.batched:
            # one ASE calculation per configuration: quenches only as tight as the user's fmax
            scaled["quench_fmax"] = max(scaled["quench_fmax"], self.fmax)
        left = self._budget_left()
        return BasinHoppingConfig(
            n_walkers=self.n_walkers,
            **scaled,
            seed=self.seed + self.rounds_done,
            budget_s=None if math.isinf(left) else max(left, 1e-3),
            max_steps=self.hops_per_step,
            target_energy=self.target_energy if self.target_energy is not None else -math.inf,
            stop_at_target=self.target_energy is not None,
        )

    def _global_round(self) -> None:
        result = basin_hopping(self._system(), self._search_config(), starts=torch.as_tensor(self.best_positions)[None])
        self._offer(result.positions, result.energy)

    def _offer(self, positions, energy: float) -> None:
        """Keep ``positions`` if its energy beats the best so far."""
        if energy < self.best_energy:
            centre_shift = self.best_positions.mean(axis=0) - np.asarray(positions).mean(axis=0)
            self.best_positions = np.asarray(positions, dtype=float) + centre_shift
            self.best_energy = float(energy)

    def _polish_step(self) -> None:
        x = torch.as_tensor(self.optimizable.get_x().reshape(-1, 3))[None]
        if self.local is None:
            scale = _nearest_neighbour_distance(x[0].numpy())
            self.local = make_minimizer(self.oracle, x, "lbfgs", fmax=0.0, max_steps=10**9, max_step=0.1 * scale)
        self.local.step()
        new = self.local.result().x[0].cpu().numpy()
        self._set_positions(new)
        energy = float(self.local.result().energy[0])
        if energy < self.best_energy:
            self.best_energy = energy
            self.best_positions = new.copy()

    def todict(self) -> Dict[str, Any]:  # noqa: D102
        d = super().todict()
        d.update(method=self.method, global_steps=self.global_steps, seed=self.seed)
        return d


class BasinHoppingMin(_GlobalOptimizer):
    """ASE optimizer running our batched basin hopping (see the module docstring).

    Example::

        from ase.cluster import Icosahedron
        from ase.calculators.lj import LennardJones
        atoms.calc = LennardJones(rc=1e3)     # large rc: literature energies
        opt = BasinHoppingMin(atoms, global_steps=5, seed=0)
        opt.run(fmax=1e-3, steps=200)
    """

    method = "basin_hopping"


class LatticeBasinHoppingMin(BasinHoppingMin):
    """:class:`BasinHoppingMin` whose first round also starts walkers from lattice packings.

    The registry's ``basin_hopping_lattice`` (the default for clusters in
    ``minimize``) as an ASE optimizer: in the first global round some walkers
    start from icosahedral, decahedral and fcc structures searched for the
    cluster's size, scaled to the nearest-neighbour distance of the quenched
    start. Suited to close-packed clusters (noble gases, many metals); for
    anything else the blind :class:`BasinHoppingMin` assumes less.

    Example::

        atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=1e3)   # Ar38
        LatticeBasinHoppingMin(atoms, budget_s=15, seed=0).run(fmax=1e-3)
    """

    method = "basin_hopping_lattice"

    def _search_config(self) -> BasinHoppingConfig:
        from .search.lattices import lattice_walkers

        config = super()._search_config()
        if self.rounds_done > 0:
            return config
        return dataclasses.replace(
            config, lattice_starts=lattice_walkers(config.n_walkers), lattice_nn=float(self._length_scale())
        )


class ActionMin(_GlobalOptimizer):
    """ASE optimizer running the action method: each global round trains the
    registry's ``action`` PLNet on the calculator's energy for ``action_budget_s``
    and seeds the batched basin-hopping walkers with its polished candidate.

    Example::

        atoms.calc = LennardJones(rc=1e3)
        ActionMin(atoms, global_steps=2, action_budget_s=5, seed=0).run(fmax=1e-3, steps=50)
    """

    method = "action"

    def __init__(self, atoms, *, action_budget_s: float = 10.0, **kwargs) -> None:
        """Create the optimizer; see :class:`_GlobalOptimizer` for the arguments.

        Args:
            atoms: The ``ase.Atoms`` to optimise.
            action_budget_s: Seconds of action training per global round (at
                most half of what is left of ``budget_s``).
            **kwargs: As for :class:`BasinHoppingMin`.
        """
        from .registry import check_budget

        self.action_budget_s = check_budget(action_budget_s, "action_budget_s")
        #: Energy of the action method's candidate in each global round.
        self.action_energies: list = []
        super().__init__(atoms, **kwargs)

    def _global_round(self) -> None:
        from .registry import METHODS, RunConfig

        system = self._system()
        budget = min(self.action_budget_s, max(0.5 * self._budget_left(), 0.1))
        res = METHODS["action"].run(system, RunConfig(seed=self.seed + self.rounds_done, budget_s=budget))
        candidate = torch.as_tensor(np.asarray(res.positions)).reshape(-1, 3)
        self.action_energies.append(float(res.energy))
        self._offer(candidate.numpy(), float(res.energy))
        starts = torch.stack([torch.as_tensor(self.best_positions), candidate])
        result = basin_hopping(system, self._search_config(), starts=starts)
        self._offer(result.positions, result.energy)
