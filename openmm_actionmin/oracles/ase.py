"""ASE adapter: any ASE calculator behind the batched oracle protocol.

ASE evaluates one configuration at a time, in eV and Angstrom. :class:`ASEOracle`
loops over the batch (``x [B, N, 3] -> energy [B], forces [B, N, 3]``) and
converts units at its boundary only:

* ``positions_ase [Angstrom] = x * length_scale``
  (``length_scale`` = Angstrom per oracle length unit),
* ``energy = energy_ase [eV] / energy_scale``
  (``energy_scale`` = eV per oracle energy unit),
* ``forces = forces_ase [eV/Angstrom] * length_scale / energy_scale``.

For the common unit systems (``angstrom``/``nm``/``bohr`` lengths,
``eV``/``kJ/mol``/``kcal/mol``/``hartree`` energies) the scales follow from
:class:`~.base.Units`; for anything else (e.g. reduced LJ units) the caller
must state both scales explicitly.

Lennard-Jones trap (important). ``ase.calculators.lj.LennardJones`` has a cutoff
``rc = 3 sigma`` by default and, with its default ``smooth=False``, *shifts*
every pair energy so that it is zero at ``rc``. Cluster energies computed with
the defaults are therefore NOT the literature (Cambridge Cluster Database)
energies. Use a very large cutoff, e.g. ``LennardJones(rc=1e3)``, or
:meth:`ASEOracle.reduced_lj`, which does that. ASE's LJ with
``sigma = epsilon = 1`` is then reduced LJ (declare ``units=REDUCED_UNITS``,
``length_scale=1``, ``energy_scale=1``: one sigma is one Angstrom and one
epsilon one eV inside ASE).

Batched twins. A calculator evaluated one configuration at a time makes a
batched search slow. :func:`batched_twin` recognises calculators that have an
exact batched torch twin and returns it: ASE's ``LennardJones`` (any sigma,
epsilon, cutoff ``rc``, onset ``ro``, shifted or ``smooth`` cutoff) on a
non-periodic structure becomes :class:`ASELennardJones`, which reproduces ASE's
energies and forces to rounding. :func:`calculator_oracle` returns the twin when
there is one and an :class:`ASEOracle` otherwise; ``ASEOracle(..., workers=k)``
evaluates a batch over ``k`` threads, each with its own copy of the calculator
(useful for calculators that release the GIL, such as ones running compiled code
or an external program).
"""

from __future__ import annotations

import copy
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .base import ASE_UNITS, REDUCED_UNITS, EnergyOracle, OracleError, Units
from .pair import PairPotentialOracle

try:
    import ase.units as _ase_units
    from ase import Atoms
except ImportError as exc:  # pragma: no cover - ase is a core dependency
    raise ImportError(
        "openmm_actionmin.oracles.ase needs the 'ase' package (a core dependency): "
        "pip install 'ase>=3.23' or reinstall with pip install openmm_actionmin"
    ) from exc

#: Angstrom per unit of length.
_ANGSTROM_PER = {"angstrom": 1.0, "nm": 10.0, "bohr": _ase_units.Bohr}
#: eV per unit of energy (CODATA values as used by ase.units).
_EV_PER = {
    "ev": 1.0,
    "kj/mol": _ase_units.kJ / _ase_units.mol,
    "kcal/mol": _ase_units.kcal / _ase_units.mol,
    "hartree": _ase_units.Hartree,
}


def atoms_from_config(
    symbols: Union[Sequence[str], str],
    x: Union[torch.Tensor, np.ndarray],
    *,
    length_scale: float = 1.0,
    cell: Optional[Union[np.ndarray, Sequence]] = None,
    pbc: Union[bool, Sequence[bool]] = False,
) -> Atoms:
    """Build an ``ase.Atoms`` from one configuration.

    Args:
        symbols: Element symbols ``[N]`` (or a formula string such as ``"H2O"``).
        x: Positions ``[N, 3]`` in oracle length units.
        length_scale: Angstrom per oracle length unit (1 if ``x`` is already in
            Angstrom).
        cell: Optional cell ``[3, 3]`` (or ``[3]``) in Angstrom.
        pbc: Periodic boundary flags.

    Returns:
        ``ase.Atoms`` with positions ``x * length_scale`` Angstrom.

    Raises:
        OracleError: ``x`` is not ``[N, 3]`` with N matching the symbols.
    """
    pos = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim == 3 and pos.shape[0] == 1:
        pos = pos[0]
    n = len(Atoms(symbols)) if isinstance(symbols, str) else len(symbols)
    if pos.shape != (n, 3):
        raise OracleError(
            f"atoms_from_config: positions must have shape [{n}, 3] for {n} symbols, got {tuple(pos.shape)}"
        )
    return Atoms(symbols, positions=pos * float(length_scale), cell=cell, pbc=pbc)


def _scales_for(units: Units, length_scale: Optional[float], energy_scale: Optional[float]) -> Tuple[float, float]:
    known_l = _ANGSTROM_PER.get(units.length.lower())
    known_e = _EV_PER.get(units.energy.lower())
    ls = known_l if length_scale is None else float(length_scale)
    es = known_e if energy_scale is None else float(energy_scale)
    if ls is None or es is None:
        missing = [
            n
            for n, v in (
                ("length_scale (Angstrom per %s)" % units.length, ls),
                ("energy_scale (eV per %s)" % units.energy, es),
            )
            if v is None
        ]
        raise OracleError(
            f"ASEOracle cannot convert ASE's eV/Angstrom to {units.energy}/{units.length} by itself: "
            f"pass {' and '.join(missing)} explicitly (for ASE's LennardJones with sigma = epsilon = 1 "
            "in reduced units: length_scale=1, energy_scale=1)"
        )
    if known_l is not None and not math.isclose(ls, known_l, rel_tol=1e-12):
        raise OracleError(f"length_scale {ls} contradicts units.length={units.length!r} ({known_l} Angstrom)")
    if known_e is not None and not math.isclose(es, known_e, rel_tol=1e-12):
        raise OracleError(f"energy_scale {es} contradicts units.energy={units.energy!r} ({known_e} eV)")
    if not (ls > 0 and es > 0 and math.isfinite(ls) and math.isfinite(es)):
        raise OracleError(f"length_scale and energy_scale must be positive and finite, got {ls}, {es}")
    return ls, es


class ASEOracle(EnergyOracle):
    """Energies and forces from any ASE calculator, one configuration at a time.

    Args:
        atoms_or_symbols: An ``ase.Atoms`` template (its symbols, cell, pbc,
            charges, magnetic moments... are kept; positions are replaced on
            each evaluation) or a sequence of element symbols.
        calculator: Any ASE ``Calculator``. It is attached to an internal copy
            of the template.
        units: Units of this oracle (default ASE's eV/Angstrom).
        length_scale: Angstrom per oracle length unit. Derived from ``units``
            for known units; required otherwise.
        energy_scale: eV per oracle energy unit. Derived from ``units`` for
            known units; required otherwise.
        cell: Optional cell ``[3, 3]`` in *oracle* length units (overrides the
            template's cell, which is in Angstrom).
        pbc: Optional periodic boundary flags (override the template's).
        dtype: Floating dtype of outputs.
        device: Torch device of outputs (ASE itself runs on the CPU).
        workers: Threads that evaluate a batch, each with its own deep copy of
            the template and calculator (1: serial, in the calling thread). Only
            calculators that release the GIL gain from more than one.
        **kwargs: Passed to :class:`~.base.EnergyOracle` (``transform``,
            ``nonfinite_energy``).

    Attributes:
        atoms: The internal ``ase.Atoms`` the calculator is attached to.
        length_scale: Angstrom per oracle length unit.
        energy_scale: eV per oracle energy unit.
        failures: Configurations on which the calculator raised.
        last_exception: The last exception raised by the calculator, if any.

    A calculator exception on an absurd geometry (e.g. a neighbour list that
    explodes) counts as a non-finite output: the configuration gets the
    documented cap ``nonfinite_energy`` with zero forces and is counted in
    ``counters.nonfinite`` (the first such exception is also issued as a
    warning, so a misconfigured calculator does not pass silently). Forces are
    read with ``apply_constraint=False`` so that they stay minus the gradient of
    the energy even if the template carries ASE constraints.

    See the module docstring for the ``LennardJones`` cutoff trap.
    """

    def __init__(
        self,
        atoms_or_symbols: Union[Atoms, Sequence[str]],
        calculator,
        *,
        units: Units = ASE_UNITS,
        length_scale: Optional[float] = None,
        energy_scale: Optional[float] = None,
        cell: Optional[Union[np.ndarray, Sequence]] = None,
        pbc: Optional[Union[bool, Sequence[bool]]] = None,
        dtype: torch.dtype = torch.float64,
        device: Union[str, torch.device] = "cpu",
        workers: int = 1,
        **kwargs,
    ) -> None:
        if int(workers) < 1:
            raise OracleError(f"ASEOracle: workers must be at least 1, got {workers}")
        if isinstance(atoms_or_symbols, Atoms):
            atoms = atoms_or_symbols.copy()
        else:
            symbols = list(atoms_or_symbols) if not isinstance(atoms_or_symbols, str) else atoms_or_symbols
            try:
                atoms = Atoms(symbols)
            except (KeyError, ValueError) as exc:
                raise OracleError(f"ASEOracle: invalid element symbols {atoms_or_symbols!r}: {exc}") from exc
        if len(atoms) < 1:
            raise OracleError("ASEOracle needs at least one atom")
        super().__init__(n_atoms=len(atoms), units=units, dtype=dtype, device=device, **kwargs)
        self.length_scale, self.energy_scale = _scales_for(units, length_scale, energy_scale)
        if cell is not None:
            atoms.set_cell(np.asarray(cell, dtype=np.float64) * self.length_scale)
        if pbc is not None:
            atoms.set_pbc(pbc)
        if atoms.pbc.any() and atoms.cell.rank < int(atoms.pbc.sum()):
            raise OracleError(
                f"ASEOracle: pbc={atoms.pbc.tolist()} but the cell has rank {atoms.cell.rank}; pass a cell "
                "(in oracle length units) or pbc=False"
            )
        if calculator is None:
            raise OracleError("ASEOracle needs an ASE calculator, got None")
        atoms.calc = calculator
        self.atoms = atoms
        self.calculator = calculator
        self.failures = 0
        self.last_exception: Optional[BaseException] = None
        self._warned = False
        self.workers = int(workers)
        self._copies: Optional[List[Atoms]] = None
        self._pool: Optional[ThreadPoolExecutor] = None

    @classmethod
    def for_calculator(cls, atoms: Atoms, calculator=None, *, workers: int = 1) -> EnergyOracle:
        """The calculator's exact batched twin if it has one (:func:`batched_twin`), else an ``ASEOracle``.

        Args:
            atoms: The structure (template).
            calculator: The calculator (default ``atoms.calc``).
            workers: Threads of the ``ASEOracle`` fallback.

        Returns:
            An oracle in ASE's units (eV, Angstrom).
        """
        return calculator_oracle(atoms, calculator, workers=workers)

    @classmethod
    def reduced_lj(
        cls,
        n_atoms: int,
        *,
        rc: float = 1.0e3,
        symbol: str = "Ar",
        **kwargs,
    ) -> "ASEOracle":
        """An LJ cluster in reduced units through ``ase.calculators.lj.LennardJones``.

        Uses ``sigma = epsilon = 1`` and a cutoff ``rc`` large enough (default
        1e3 sigma) that ASE's energy shift at the cutoff is negligible (about
        ``4 rc^-6`` per pair), so energies match the literature.

        Args:
            n_atoms: Number of atoms.
            rc: LJ cutoff in sigma.
            symbol: Element symbol for every atom (irrelevant to the energy).
            **kwargs: Passed to the constructor (``dtype``, ``transform`` ...).

        Returns:
            An :class:`ASEOracle` in ``REDUCED_UNITS``.
        """
        from ase.calculators.lj import LennardJones

        calc = LennardJones(sigma=1.0, epsilon=1.0, rc=float(rc), smooth=False)
        return cls([symbol] * int(n_atoms), calc, units=REDUCED_UNITS, length_scale=1.0, energy_scale=1.0, **kwargs)

    def _evaluate(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        pos = x.detach().to("cpu", torch.float64).numpy() * self.length_scale
        b = pos.shape[0]
        energy = np.empty(b, dtype=np.float64)
        forces = np.empty(pos.shape, dtype=np.float64)
        if self.workers == 1 or b == 1:
            self._evaluate_range(self.atoms, pos, energy, forces, 0, b)
        else:
            copies = self._worker_atoms()
            bounds = np.linspace(0, b, len(copies) + 1).astype(int)
            jobs = [
                self._pool.submit(self._evaluate_range, atoms, pos, energy, forces, int(lo), int(hi))
                for atoms, lo, hi in zip(copies, bounds[:-1], bounds[1:])
                if hi > lo
            ]
            for job in jobs:
                job.result()
        return (
            torch.from_numpy(energy).to(device=self.device, dtype=self.dtype),
            torch.from_numpy(forces).to(device=self.device, dtype=self.dtype),
        )

    def _worker_atoms(self) -> List[Atoms]:
        """The per-thread copies of the template (the first is the template itself), made once."""
        if self._copies is None:
            copies = [self.atoms]
            for _ in range(self.workers - 1):
                atoms = self.atoms.copy()
                atoms.calc = copy.deepcopy(self.calculator)
                copies.append(atoms)
            self._copies = copies
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ase-oracle")
        return self._copies

    def _evaluate_range(
        self, atoms: Atoms, pos: np.ndarray, energy: np.ndarray, forces: np.ndarray, lo: int, hi: int
    ) -> None:
        """Evaluate configurations ``lo..hi-1`` of ``pos`` with ``atoms``' calculator, in place."""
        force_factor = self.length_scale / self.energy_scale
        for i in range(lo, hi):
            atoms.set_positions(pos[i], apply_constraint=False)
            try:
                e = atoms.get_potential_energy()
                f = atoms.get_forces(apply_constraint=False)
            except Exception as exc:  # noqa: BLE001 - any calculator failure becomes the documented cap
                self._record_failure(exc, i, atoms.calc)
                energy[i] = np.nan
                forces[i] = np.nan
                continue
            energy[i] = e / self.energy_scale
            forces[i] = f * force_factor

    def _record_failure(self, exc: BaseException, index: int, calculator=None) -> None:
        self.failures += 1
        self.last_exception = exc
        reset = getattr(self.calculator if calculator is None else calculator, "reset", None)
        if callable(reset):
            reset()
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"ASEOracle: calculator {type(self.calculator).__name__} raised {type(exc).__name__}: {exc} "
                f"on configuration {index} of a batch; it is reported as non-finite (energy capped at "
                f"{self.nonfinite_energy:g}). Further failures are counted in counters.nonfinite "
                "and .failures without warning.",
                RuntimeWarning,
                stacklevel=5,
            )

    def to_atoms(self, x: Union[torch.Tensor, np.ndarray]) -> Atoms:
        """A copy of the template with positions ``x [N, 3]`` (oracle units), without calculator."""
        atoms = self.atoms.copy()
        atoms.calc = None
        pos = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
        pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
        if pos.shape[0] != len(atoms):
            raise OracleError(f"to_atoms: expected [{len(atoms)}, 3] positions, got {tuple(pos.shape)}")
        atoms.set_positions(pos * self.length_scale, apply_constraint=False)
        return atoms


class ASELennardJones(PairPotentialOracle):
    """Batched twin of ``ase.calculators.lj.LennardJones`` for a non-periodic structure.

    Reproduces ASE's pair sums exactly, cutoff included: a pair farther apart
    than ``rc`` contributes nothing; with ``smooth=False`` every pair within
    ``rc`` is shifted by ``-u(rc)`` (forces unchanged), with ``smooth=True`` the
    pair energy is multiplied by ASE's cutoff function between ``ro`` and ``rc``
    (and the forces accordingly). Units are ASE's (eV, Angstrom); each batch is
    centred before the Gram-matrix distances are formed, so far-from-origin
    structures lose no precision.

    Args:
        n_atoms: Number of atoms.
        sigma: LJ sigma in Angstrom.
        epsilon: LJ epsilon in eV.
        rc: Cutoff in Angstrom.
        ro: Onset of the smooth cutoff in Angstrom.
        smooth: ASE's cutoff mode.
        **kwargs: Passed to :class:`~.pair.PairPotentialOracle` (``dtype``,
            ``device``, ``transform``, ``nonfinite_energy``).
    """

    def __init__(
        self,
        n_atoms: int,
        *,
        sigma: float = 1.0,
        epsilon: float = 1.0,
        rc: float = 3.0,
        ro: Optional[float] = None,
        smooth: bool = False,
        **kwargs,
    ) -> None:
        kwargs.setdefault("units", ASE_UNITS)
        super().__init__(n_atoms, sigma=float(sigma), epsilon=float(epsilon), **kwargs)
        self.sigma, self.epsilon, self.rc = float(sigma), float(epsilon), float(rc)
        self.ro = 0.66 * self.rc if ro is None else float(ro)
        self.smooth = bool(smooth)
        if not (self.sigma > 0 and self.rc > 0 and math.isfinite(self.rc)):
            raise OracleError(f"ASELennardJones: sigma and rc must be positive and finite, got {sigma}, {rc}")
        if self.smooth and not self.ro < self.rc:
            raise OracleError(f"ASELennardJones: the smooth cutoff needs ro < rc, got ro={self.ro}, rc={self.rc}")
        self._e0 = 4 * self.epsilon * ((self.sigma / self.rc) ** 12 - (self.sigma / self.rc) ** 6)

    def _pair_terms(self, r2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pair energies ``u`` and ``(du/dr)/r`` at squared distances ``r2`` (ASE's expressions)."""
        rc2 = self.rc * self.rc
        inside = r2 <= rc2
        c6 = torch.where(inside, (self.sigma * self.sigma / r2) ** 3, torch.zeros((), dtype=r2.dtype, device=r2.device))
        c12 = c6 * c6
        energy = 4.0 * self.epsilon * (c12 - c6)
        du = -24.0 * self.epsilon * (2.0 * c12 - c6) / r2
        if self.smooth:
            ro2 = self.ro * self.ro
            width = (rc2 - ro2) ** 3
            one = torch.ones((), dtype=r2.dtype, device=r2.device)
            zero = torch.zeros((), dtype=r2.dtype, device=r2.device)
            fc = torch.where(
                r2 < ro2,
                one,
                torch.where(inside & (r2 < rc2), (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / width, zero),
            )
            dfc = torch.where(
                r2 < ro2, zero, torch.where(inside & (r2 < rc2), 6 * (rc2 - r2) * (ro2 - r2) / width, zero)
            )
            du = fc * du + 2.0 * dfc * energy
            energy = fc * energy
        else:
            energy = energy - self._e0 * (c6 != 0.0)
        return energy, du

    def _evaluate_chunk(self, x: torch.Tensor):
        x = x - x.mean(dim=1, keepdim=True)
        sq = (x * x).sum(-1)
        r2 = torch.baddbmm(sq[:, :, None] + sq[:, None, :], x, x.transpose(1, 2), alpha=-2.0)
        r2.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        pair_energy, du = self._pair_terms(r2)
        energy = 0.5 * pair_energy.sum(dim=(1, 2))
        # f_i = sum_j du_ij (x_j - x_i)
        forces = torch.bmm(du, x) - x * du.sum(-1, keepdim=True)
        return energy, forces

    def energy_fn(self, x: torch.Tensor) -> torch.Tensor:
        """Raw energy ``[B]`` over the pair list (the autograd reference)."""
        diff = x[:, self._i] - x[:, self._j]
        pair_energy, _ = self._pair_terms((diff * diff).sum(dim=-1))
        return pair_energy.sum(dim=-1)


def batched_twin(atoms: Atoms, calculator=None) -> Optional[EnergyOracle]:
    """An exact batched torch oracle for ``calculator`` on ``atoms``, or None.

    Recognised: ``ase.calculators.lj.LennardJones`` itself (not a subclass, which
    may change its physics) on a structure without periodic directions.

    Args:
        atoms: The structure (its atom count and ``pbc``).
        calculator: The calculator (default ``atoms.calc``).

    Returns:
        An oracle in ASE's units (eV, Angstrom) whose energies and forces equal
        the calculator's, or None when there is no twin.
    """
    from ase.calculators.lj import LennardJones

    calc = atoms.calc if calculator is None else calculator
    if type(calc) is not LennardJones or any(atoms.pbc) or len(atoms) < 2:
        return None
    p = calc.parameters
    try:
        return ASELennardJones(len(atoms), sigma=p.sigma, epsilon=p.epsilon, rc=p.rc, ro=p.ro, smooth=p.smooth)
    except (OracleError, TypeError, ValueError):
        return None


def calculator_oracle(atoms: Atoms, calculator=None, *, workers: int = 1) -> EnergyOracle:
    """The fastest oracle for a calculator: its batched twin if it has one, else an :class:`ASEOracle`.

    Args:
        atoms: The structure (template of the :class:`ASEOracle`).
        calculator: The calculator (default ``atoms.calc``).
        workers: Threads of the :class:`ASEOracle` fallback.

    Returns:
        An oracle in ASE's units (eV, Angstrom).
    """
    calc = atoms.calc if calculator is None else calculator
    twin = batched_twin(atoms, calc)
    return twin if twin is not None else ASEOracle(atoms, calc, workers=workers)


__all__ = ["ASELennardJones", "ASEOracle", "atoms_from_config", "batched_twin", "calculator_oracle"]
