"""openmm_actionmin: global minima of energy landscapes.

Peptides under AMBER force fields (through OpenMM), atomic clusters under
Lennard-Jones and Coulomb potentials, and synthetic test functions, searched
with an action-functional-trained PLNet and honest baselines beside it.

The names most users need::

    import openmm_actionmin as am
    result = am.minimize("LJ38", budget_s=60)     # or a PDB path, ase.Atoms, ...
    result.save("lj38.xyz")
    am.systems.lj_cluster(13)                      # ready-made systems
"""

import importlib

__version__ = "0.1.0"

from .api import DEFAULT_METHOD, as_system, minimize, minimize_pdb
from .data import data_path
from .executor import Job, make_jobs, minimize_many
from .oracles import EnergyOracle, FiniteEnergy, Units, validate_oracle
from .result import Result

_LAZY_SUBMODULES = (
    "systems",
    "oracles",
    "search",
    "models",
    "structures",
    "proteins",
    "benchmarks",
    "spaces",
    "torsions",
)

__all__ = [
    "DEFAULT_METHOD",
    "EnergyOracle",
    "FiniteEnergy",
    "Job",
    "Result",
    "Units",
    "__version__",
    "as_system",
    "data_path",
    "make_jobs",
    "minimize",
    "minimize_many",
    "minimize_pdb",
    "validate_oracle",
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
