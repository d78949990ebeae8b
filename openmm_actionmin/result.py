"""The one result type every search method returns."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from .oracles.base import Units


def atomic_write_text(path: os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: os.PathLike) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (temporary file, then rename), for checkpoints."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        """A JSON-serialisable summary (positions included, topology not)."""
        return {
            "system": self.system,
            "method": self.method,
            "seed": self.seed,
            "energy": float(self.energy),
            "units": dataclasses.asdict(self.units),
            "force_calls": int(self.force_calls),
            "wall_s": float(self.wall_s),
            "positions": np.asarray(self.positions, dtype=float).tolist(),
            "symbols": self.symbols,
            "history": self.history,
            "extra": _jsonable(self.extra),
        }

    def save(self, path: os.PathLike) -> Path:
        """Write the result; the format follows the extension (.pdb, .xyz, .json).

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
            atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
            return path
        if ext in (".pdb", ".xyz"):
            from . import structures

            if np.asarray(self.positions).ndim != 2:
                raise ValueError(f"cannot write {path}: {self.system or 'this result'} is not an atomic system; use .json")
            if ext == ".pdb":
                structures.write_pdb(path, self.positions, self.units, topology=self.topology, symbols=self.symbols, energy=self.energy)
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return value.tolist()
    return value
