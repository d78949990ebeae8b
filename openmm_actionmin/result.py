"""The one result type every search method returns."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from .fileio import to_jsonable, write_json
from .oracles.base import Units


@dataclasses.dataclass
class Result:
    """Outcome of a search.

    Attributes:
        positions: Best configuration found, ``[N, 3]`` (atoms) or ``[D]``
            (functions), in ``units.length``.
        energy: Its energy in ``units.energy`` (raw, not transformed).
        units: Units of ``positions`` and ``energy``.
        method: Name of the method that produced it.
        seed: Seed of the run.
        force_calls: Configurations evaluated by the oracle during the run.
        wall_s: Wall-clock seconds of the run.
        history: One dict per round/iteration (keys depend on the method;
            always ``wall_s`` and ``best_energy``).
        system: Name of the system searched.
        symbols: Element symbols ``[N]`` for export (atomic systems).
        topology: Optional OpenMM topology for PDB export.
        extra: Method-specific details (e.g. per-force-group energies, RMSD).
    """

    positions: np.ndarray
    energy: float
    units: Units
    method: str
    seed: Optional[int] = None
    force_calls: int = 0
    wall_s: float = 0.0
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    system: str = ""
    symbols: Optional[List[str]] = None
    topology: Any = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """A strict-JSON-serialisable summary (positions included, topology not).

        numpy / torch values become Python numbers and lists, and non-finite
        numbers (NaN, +-inf) become ``None`` (JSON ``null``) everywhere,
        including ``energy``, ``history`` and ``extra``.
        """
        return to_jsonable(
            {
                "system": self.system,
                "method": self.method,
                "seed": self.seed,
                "energy": float(self.energy),
                "units": dataclasses.asdict(self.units),
                "force_calls": int(self.force_calls),
                "wall_s": float(self.wall_s),
                "positions": np.asarray(self.positions, dtype=float),
                "symbols": self.symbols,
                "history": self.history,
                "extra": self.extra,
            }
        )

    def save(self, path: os.PathLike) -> Path:
        """Write the result atomically; the format follows the extension (.pdb, .xyz, .json).

        JSON is strict (non-finite numbers are written as ``null``, see :meth:`to_dict`).

        Args:
            path: Output file path.

        Returns:
            The path written.

        Raises:
            ValueError: for an unknown extension, or PDB/XYZ of a non-atomic result.
        """
        path = Path(path)
        ext = path.suffix.lower()
        if ext == ".json":
            write_json(path, self.to_dict())
            return path
        if ext in (".pdb", ".xyz"):
            from . import structures

            if np.asarray(self.positions).ndim != 2:
                raise ValueError(
                    f"cannot write {path}: {self.system or 'this result'} is not an atomic system; use .json"
                )
            if ext == ".pdb":
                structures.write_pdb(
                    path, self.positions, self.units, topology=self.topology, symbols=self.symbols, energy=self.energy
                )
            else:
                structures.write_xyz(path, self.positions, self.units, symbols=self.symbols, energy=self.energy)
            return path
        raise ValueError(f"cannot write {path}: unknown extension {ext!r}; use .pdb, .xyz or .json")

    def to_mdtraj(self):
        """The best structure as a one-frame ``mdtraj.Trajectory`` (nm)."""
        from . import structures

        return structures.to_mdtraj(self.positions, self.units, topology=self.topology, symbols=self.symbols)

    def to_ase(self):
        """The best structure as an ``ase.Atoms`` (Angstrom)."""
        from . import structures

        return structures.to_ase(self.positions, self.units, symbols=self.symbols)

    def plot(self, path: os.PathLike, keys: Optional[List[str]] = None) -> Path:
        """Plot history columns against wall time to a PNG.

        Args:
            path: Output PNG path.
            keys: History keys to plot (default: every numeric key but ``wall_s``).

        Returns:
            The path written.
        """
        from .plots import plot_history

        return plot_history(self.history, path, keys=keys, title=f"{self.method} on {self.system}")
