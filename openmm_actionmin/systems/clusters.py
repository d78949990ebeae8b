"""Atomic cluster systems in reduced units: LJ, binary LJ, LJ + Coulomb.

Every builder returns a :class:`~.base.System` whose oracle is a batched torch
:class:`~openmm_actionmin.oracles.pair.PairPotentialOracle` (closed-form
forces; energies in epsilon, lengths in sigma, no cutoff) and whose search
space is a cube centred at the origin.

Search box: a cube of side ``L = (N / density)^(1/3)`` with the default
``density = 0.5`` (reduced number density). Compact LJ clusters have a
density near 1 (nearest-neighbour distance 2^(1/6) sigma), so the box holds
the global minimum with room to spare while a uniform random start is not
absurdly dilute. Random starts in the box overlap; the local minimisers in
:mod:`openmm_actionmin.search.local` cap the step length to cope.

Reference energies: ``reference_energy`` of ``lj_cluster(n)`` for
``3 <= n <= 150`` is the putative global minimum from the Cambridge Cluster
Database (``systems/lj_global_minima.csv``). Binary and ionic clusters have no
reference file here: their ``reference_energy`` is ``None``. (The StriderNET
comparison of the action paper, its appendix A.4, measures a *distance* to a
catalogued structure of Mravlak et al. 2016, which is not shipped.)

``metadata["nn_distance"]`` is the LJ pair minimum ``2^(1/6) sigma`` (of
the A-A pair for binary clusters): the nearest-neighbour distance of the
lattice starts of :mod:`openmm_actionmin.search.lattices`.

Element labels for export follow :mod:`openmm_actionmin.structures`: LJ
atoms ``Ar``, binary A/B ``Ar``/``Ne``, ionic +q/-q ``Na``/``Cl``.
"""

from __future__ import annotations

import csv
import functools
import re
from typing import Dict, Optional, Union

import torch

from ..data import data_path
from ..oracles.pair import LJ_NN, PairPotentialOracle, binary_lennard_jones
from ..spaces import Box
from ..structures import cluster_symbols
from .base import System

#: Default reduced number density of the search cube.
DEFAULT_DENSITY = 0.5

#: The StriderNET binary-LJ setting of the action paper (its appendix A.4).
STRIDERNET_PARAMS = {
    "n_a": 80,
    "n_b": 20,
    "sigma_aa": 1.0,
    "sigma_ab": 1.0,
    "sigma_bb": 1.0,
    "eps_aa": 1.0,
    "eps_ab": 1.5,
    "eps_bb": 0.62,
}


@functools.lru_cache(maxsize=1)
def lj_reference_energies() -> Dict[int, float]:
    """Putative global-minimum energies of LJ_n, n = 3..150 (epsilon).

    Returns:
        ``{n: energy}`` read from ``systems/lj_global_minima.csv``.
    """
    path = data_path("systems", "lj_global_minima.csv")
    table: Dict[int, float] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row_no, row in enumerate(csv.DictReader(fh), start=2):
            try:
                table[int(row["n_atoms"])] = float(row["energy_epsilon"])
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}, line {row_no}: expected columns n_atoms,energy_epsilon, got {row}") from err
    return table


def _box(n: int, density: float, dtype: torch.dtype, device) -> Box:
    if not density > 0:
        raise ValueError(f"density must be positive (reduced number density, e.g. 0.5), got {density}")
    half = 0.5 * (n / density) ** (1.0 / 3.0)
    return Box.cube(half, (n, 3), dtype=dtype, device=device)


def _check_n(n: int, what: str, minimum: int = 2) -> int:
    if int(n) != n or n < minimum:
        raise ValueError(f"{what} needs an integer number of atoms >= {minimum}, got {n}")
    return int(n)


def lj_cluster(
    n: int,
    *,
    density: float = DEFAULT_DENSITY,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
) -> System:
    """A single-component Lennard-Jones cluster LJ_n (eps = sigma = 1).

    Args:
        n: Number of atoms (>= 2).
        density: Reduced number density defining the search cube.
        dtype: Oracle dtype.
        device: Oracle device.

    Returns:
        ``System`` named ``"LJ<n>"``; ``reference_energy`` from the Cambridge
        Cluster Database for 3 <= n <= 150, else ``None``.
    """
    n = _check_n(n, "lj_cluster")
    oracle = PairPotentialOracle(n, dtype=dtype, device=device)
    return System(
        name=f"LJ{n}",
        oracle=oracle,
        space=_box(n, density, dtype, device),
        reference_energy=lj_reference_energies().get(n),
        symbols=cluster_symbols(None, n),
        types=[0] * n,
        metadata={
            "density": density,
            "model": "lennard-jones",
            "nn_distance": LJ_NN,
            "reference": "Cambridge Cluster Database" if n in lj_reference_energies() else None,
        },
    )


def binary_lj(
    n_a: int,
    n_b: int,
    *,
    sigma_aa: float = 1.0,
    sigma_ab: float = 0.8,
    sigma_bb: float = 0.88,
    eps_aa: float = 1.0,
    eps_ab: float = 1.5,
    eps_bb: float = 0.5,
    density: float = DEFAULT_DENSITY,
    name: Optional[str] = None,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
) -> System:
    """A binary LJ cluster: atoms ``0..n_a-1`` are type A, the rest type B.

    Defaults are the Kob-Andersen parameters. ``reference_energy`` is ``None``.

    Args:
        n_a: Number of A atoms (>= 1).
        n_b: Number of B atoms (>= 0).
        sigma_aa: A-A sigma.
        sigma_ab: A-B sigma.
        sigma_bb: B-B sigma.
        eps_aa: A-A epsilon.
        eps_ab: A-B epsilon.
        eps_bb: B-B epsilon.
        density: Reduced number density defining the search cube.
        name: System name (default ``"BLJ<n_a>:<n_b>"``).
        dtype: Oracle dtype.
        device: Oracle device.

    Returns:
        ``System`` with ``types [N]`` and symbols ``Ar`` (A) / ``Ne`` (B).
    """
    n_a = _check_n(n_a, "binary_lj (n_a)", 1)
    n_b = _check_n(n_b, "binary_lj (n_b)", 0)
    n = n_a + n_b
    _check_n(n, "binary_lj")
    types = [0] * n_a + [1] * n_b
    params = dict(sigma_aa=sigma_aa, sigma_ab=sigma_ab, sigma_bb=sigma_bb, eps_aa=eps_aa, eps_ab=eps_ab, eps_bb=eps_bb)
    for key, value in params.items():
        if not value > 0:
            raise ValueError(f"binary_lj: {key} must be positive, got {value}")
    oracle = binary_lennard_jones(n_a, n_b, **params, dtype=dtype, device=device)
    return System(
        name=name or f"BLJ{n_a}:{n_b}",
        oracle=oracle,
        space=_box(n, density, dtype, device),
        reference_energy=None,
        symbols=cluster_symbols(types, n),
        types=types,
        metadata={
            "density": density,
            "model": "binary lennard-jones",
            "n_a": n_a,
            "n_b": n_b,
            "nn_distance": LJ_NN * sigma_aa,
            **params,
        },
    )


def stridernet_binary_lj(
    *, density: float = DEFAULT_DENSITY, dtype: torch.dtype = torch.float64, device: Union[str, torch.device] = "cpu"
) -> System:
    """The paper's StriderNET comparison: 100 atoms, A:B = 80:20.

    sigma_AA = sigma_AB = sigma_BB = 1, eps_AA = 1, eps_AB = 1.5, eps_BB = 0.62
    (the action paper, appendix A.4). No reference energy is shipped (``None``).

    Returns:
        ``System`` named ``"BLJ100"``.
    """
    p = STRIDERNET_PARAMS
    return binary_lj(
        p["n_a"],
        p["n_b"],
        sigma_aa=p["sigma_aa"],
        sigma_ab=p["sigma_ab"],
        sigma_bb=p["sigma_bb"],
        eps_aa=p["eps_aa"],
        eps_ab=p["eps_ab"],
        eps_bb=p["eps_bb"],
        density=density,
        name="BLJ100",
        dtype=dtype,
        device=device,
    )


def ionic_cluster(
    n: int,
    charge: float = 1.0,
    *,
    sigma: float = 1.0,
    epsilon: float = 1.0,
    coulomb_k: float = 1.0,
    density: float = DEFAULT_DENSITY,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
) -> System:
    """LJ + Coulomb cluster with alternating charges ``+q, -q, +q, ...``.

    An odd ``n`` carries a net charge ``+q`` (allowed, but usually unwanted).
    ``reference_energy`` is ``None``.

    Args:
        n: Number of ions (>= 2).
        charge: Magnitude q of each charge (reduced units, Coulomb constant
            ``coulomb_k``).
        sigma: LJ sigma of every pair.
        epsilon: LJ epsilon of every pair.
        coulomb_k: Coulomb constant in reduced units.
        density: Reduced number density defining the search cube.
        dtype: Oracle dtype.
        device: Oracle device.

    Returns:
        ``System`` named ``"ION<n>"``; symbols ``Na`` (+q) / ``Cl`` (-q).
    """
    n = _check_n(n, "ionic_cluster")
    charges = [charge if i % 2 == 0 else -charge for i in range(n)]
    types = [i % 2 for i in range(n)]
    oracle = PairPotentialOracle(
        n, sigma=sigma, epsilon=epsilon, charges=charges, coulomb_k=coulomb_k, dtype=dtype, device=device
    )
    # same LJ for both ions: the types only label the charge sign
    return System(
        name=f"ION{n}",
        oracle=oracle,
        space=_box(n, density, dtype, device),
        reference_energy=None,
        symbols=cluster_symbols(types, n, ionic=True),
        types=types,
        metadata={
            "density": density,
            "model": "lennard-jones + coulomb",
            "nn_distance": LJ_NN * sigma,
            "charge": charge,
            "sigma": sigma,
            "epsilon": epsilon,
            "coulomb_k": coulomb_k,
        },
    )


_NAME_RE = re.compile(r"^(LJ|BLJ|ION)(\d+)$", re.IGNORECASE)


def named_system(name: str, **kwargs) -> System:
    """Build a cluster system from a short name.

    Recognised names (case-insensitive):

    * ``"LJ<n>"``: :func:`lj_cluster` (e.g. ``"LJ38"``).
    * ``"BLJ100"`` or ``"stridernet"``: :func:`stridernet_binary_lj`.
    * ``"BLJ<n>"``: StriderNET parameters with ``round(0.8 n)`` A atoms.
    * ``"ION<n>"``: :func:`ionic_cluster` with unit charges.

    Args:
        name: The system name.
        **kwargs: Passed to the builder (``density``, ``dtype``, ``device``).

    Returns:
        The ``System``.

    Raises:
        ValueError: for an unknown name, listing the accepted forms.
    """
    text = str(name).strip()
    if text.lower() == "stridernet":
        return stridernet_binary_lj(**kwargs)
    match = _NAME_RE.match(text)
    if not match:
        raise ValueError(
            f"unknown cluster system {name!r}: use LJ<n> (e.g. LJ38), BLJ<n> (BLJ100 = stridernet) or ION<n>"
        )
    kind, n = match.group(1).upper(), int(match.group(2))
    if kind == "LJ":
        return lj_cluster(n, **kwargs)
    if kind == "ION":
        return ionic_cluster(n, **kwargs)
    if n == 100:
        return stridernet_binary_lj(**kwargs)
    n_a = int(round(0.8 * n))
    p = {k: v for k, v in STRIDERNET_PARAMS.items() if k not in ("n_a", "n_b")}
    return binary_lj(n_a, n - n_a, name=f"BLJ{n}", **p, **kwargs)
