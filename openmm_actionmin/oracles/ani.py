"""TorchANI adapter: ANI neural-network potentials as batched torch oracles.

A torchani model maps ``(species [B, N], coordinates [B, N, 3] in Angstrom)`` to
``(species, energies [B] in Hartree)``. :class:`ANIOracle` feeds it a fixed list
of elements and converts units at its boundary only (default OpenMM's kJ/mol
and nm; eV/Angstrom and others on request). Forces come from torch autograd
through the model (it is a :class:`~.base.TorchOracle`), so the oracle runs on
any device the model runs on.

Conversion constants are CODATA 2018 (as in OpenMM): 1 Hartree =
2625.4996394799 kJ/mol = 27.211386245988 eV = 627.5094740631 kcal/mol.
(torchani's own ``torchani.units`` uses the older CODATA 2014 value
27.211386024367 eV; the two differ by 8e-9 relative.)

Pretrained models: :meth:`ANIOracle.pretrained` never downloads. It looks for
the weight file where torchani would cache it,
``$TORCHANI_DATA_DIR/StateDicts/<file>`` or, without that variable,
``~/.local/share/Torchani/StateDicts/<file>`` (``ani2x_state_dict.pt`` for
ANI-2x), and raises :class:`FileNotFoundError` naming that exact path when it
is absent.

This module imports torchani and is not imported by ``import openmm_actionmin``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Union

import torch

from .base import OPENMM_UNITS, OracleError, TorchOracle, Units

try:
    import torchani  # noqa: F401 - the import is the guard that names the missing extra
    from torchani.constants import ATOMIC_NUMBER
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "openmm_actionmin.oracles.ani needs TorchANI: pip install 'openmm_actionmin[ani]' (or pip install torchani)"
    ) from exc

#: Angstrom per unit of length.
ANGSTROM_PER: Dict[str, float] = {"angstrom": 1.0, "nm": 10.0}
#: Units of energy per Hartree (CODATA 2018).
PER_HARTREE: Dict[str, float] = {
    "hartree": 1.0,
    "kj/mol": 2625.4996394799,
    "ev": 27.211386245988,
    "kcal/mol": 627.5094740631,
}

#: torchani's pretrained models (factory name in ``torchani.models``) and their weight files.
PRETRAINED_FILES: Dict[str, str] = {
    "ANI1x": "ani1x_state_dict.pt",
    "ANI1ccx": "ani1ccx_state_dict.pt",
    "ANI2x": "ani2x_state_dict.pt",
    "ANI2xr": "ani2xr.pt",
    "ANI2dr": "ani2dr.pt",
    "ANI1xnr": "ani1xnr.pt",
}


def torchani_state_dicts_dir(data_dir: Optional[Union[str, Path]] = None) -> Path:
    """The folder in which torchani keeps pretrained weights (not created).

    Mirrors ``torchani.paths.state_dicts_dir()`` of torchani 2.9 without its
    side effect of creating the folder.

    Args:
        data_dir: torchani's data root; default ``$TORCHANI_DATA_DIR`` or
            ``~/.local/share/Torchani``.

    Returns:
        ``<data_dir>/StateDicts``.
    """
    if data_dir is None:
        env = os.getenv("TORCHANI_DATA_DIR")
        data_dir = Path(env) if env else Path.home() / ".local" / "share" / "Torchani"
    return Path(data_dir) / "StateDicts"


@contextlib.contextmanager
def _local_state_dicts(directory: Path) -> Iterator[None]:
    """Make torchani's model factories read weights from ``directory`` only (no network)."""
    import torchani.arch as arch
    import torchani.models as models

    original = models._fetch_state_dict

    def local_fetch(state_dict_file: str, local: bool = False, private: bool = False):
        return arch._fetch_state_dict(str(directory / state_dict_file), local=True)

    models._fetch_state_dict = local_fetch
    try:
        yield
    finally:
        models._fetch_state_dict = original


class ANIOracle(TorchOracle):
    """Energies and forces of one molecule from a TorchANI model.

    Args:
        model: A torchani model (e.g. ``torchani.models.ANI2x()`` or one built
            with ``torchani.arch.Assembler``): called as
            ``model((species [B, N], coordinates [B, N, 3] Angstrom))`` and
            returning ``(species, energies [B] Hartree)``. It is moved to
            ``dtype`` / ``device`` in place (as ``torch.nn.Module.to`` does).
        species: Element symbols of the N atoms, e.g. ``["O", "H", "H"]``.
        units: Oracle units (default ``kJ/mol`` and ``nm``). Energies
            ``kJ/mol``, ``eV``, ``kcal/mol`` or ``hartree``; lengths ``nm`` or
            ``angstrom``.
        dtype: Floating dtype (float64 by default).
        device: Torch device.
        **kwargs: Passed to :class:`~.base.EnergyOracle` (``transform``,
            ``nonfinite_energy``).

    Attributes:
        model: The wrapped model.
        species: Element symbols ``[N]``.
        length_to_angstrom: Angstrom per oracle length unit.
        hartree_to_energy: Oracle energy units per Hartree.

    Raises:
        OracleError: unknown element, element not supported by the model, or
            unsupported units.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        species: Sequence[str],
        *,
        units: Units = OPENMM_UNITS,
        dtype: torch.dtype = torch.float64,
        device: Union[str, torch.device] = "cpu",
        **kwargs,
    ) -> None:
        species = [str(s) for s in species]
        if not species:
            raise OracleError("ANIOracle needs at least one atom in species")
        super().__init__(n_atoms=len(species), units=units, dtype=dtype, device=device, **kwargs)
        length = ANGSTROM_PER.get(units.length.lower())
        energy = PER_HARTREE.get(units.energy.lower())
        if length is None or energy is None:
            raise OracleError(
                f"ANIOracle supports energies {sorted(PER_HARTREE)} and lengths {sorted(ANGSTROM_PER)}, "
                f"got {units.energy!r} / {units.length!r}"
            )
        self.length_to_angstrom = length
        self.hartree_to_energy = energy
        self.species = species
        for i, s in enumerate(species):
            if s not in ATOMIC_NUMBER:
                raise OracleError(f"ANIOracle: atom {i} has unknown element symbol {s!r}")
        supported = getattr(model, "symbols", None)
        if supported is not None:
            supported = [str(s) for s in supported]
            for i, s in enumerate(species):
                if s not in supported:
                    raise OracleError(
                        f"ANIOracle: atom {i} is {s!r}, which this model does not support "
                        f"(supported elements: {', '.join(supported)})"
                    )
        if getattr(model, "periodic_table_index", True):
            codes = [ATOMIC_NUMBER[s] for s in species]
        else:
            if supported is None:
                raise OracleError(
                    "ANIOracle: the model takes internal element indices (periodic_table_index=False) "
                    "but has no 'symbols' to map element symbols to them"
                )
            codes = [supported.index(s) for s in species]
        self.model = model.to(device=self.device, dtype=dtype)
        self._species_codes = torch.tensor(codes, dtype=torch.long, device=self.device)

    @classmethod
    def pretrained(
        cls,
        name: str = "ANI2x",
        species: Optional[Sequence[str]] = None,
        *,
        model_index: Optional[int] = None,
        data_dir: Optional[Union[str, Path]] = None,
        **kwargs,
    ) -> "ANIOracle":
        """Wrap one of torchani's pretrained models, from local weights only.

        Args:
            name: Model factory in ``torchani.models``: one of
                :data:`PRETRAINED_FILES` (``"ANI2x"``, ``"ANI1x"``, ...).
            species: Element symbols of the molecule ``[N]``.
            model_index: Use one member of the ensemble instead of the mean.
            data_dir: torchani's data root (default ``$TORCHANI_DATA_DIR`` or
                ``~/.local/share/Torchani``); weights are read from
                ``<data_dir>/StateDicts/<file>``.
            **kwargs: Passed to the constructor (``units``, ``dtype``,
                ``device``, ``transform``).

        Returns:
            An :class:`ANIOracle`.

        Raises:
            OracleError: unknown model name or no species.
            FileNotFoundError: the weight file is not there; the message says
                which file to put where. Nothing is downloaded.
        """
        if name not in PRETRAINED_FILES:
            raise OracleError(f"unknown pretrained TorchANI model {name!r}; known: {', '.join(PRETRAINED_FILES)}")
        if not species:
            raise OracleError("ANIOracle.pretrained needs the element symbols of the molecule (species=[...])")
        filename = PRETRAINED_FILES[name]
        directory = torchani_state_dicts_dir(data_dir)
        path = directory / filename
        if not path.is_file():
            repo = filename.replace("_state_dict.pt", "").replace(".pt", "")
            raise FileNotFoundError(
                f"TorchANI {name} weights not found: expected the file {path}. Weights cannot be downloaded here. "
                f"On a machine with network access get {filename} (Hugging Face repo roitberg-group/{repo}, or "
                f"https://github.com/roitberg-group/torchani_model_zoo/releases/download/v0.1/{filename}; running "
                f"torchani.models.{name}() once also caches it under ~/.local/share/Torchani/StateDicts/) and copy it "
                f"to {path}, or set TORCHANI_DATA_DIR (or data_dir=) to a folder that contains StateDicts/{filename}."
            )
        import torchani.models as models

        factory = getattr(models, name)
        with _local_state_dicts(directory):
            model = factory(model_index=model_index)
        return cls(model, species, **kwargs)

    def energy_fn(self, x: torch.Tensor) -> torch.Tensor:
        """Energy ``[B]`` in oracle units of ``x [B, N, 3]`` in oracle length units."""
        coords = x * self.length_to_angstrom
        species = self._species_codes.expand(x.shape[0], -1)
        energies = self.model((species, coords))[1]
        return energies * self.hartree_to_energy


__all__ = ["ANGSTROM_PER", "ANIOracle", "PER_HARTREE", "PRETRAINED_FILES", "torchani_state_dicts_dir"]
