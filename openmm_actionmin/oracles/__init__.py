"""Energy oracles: one batched, differentiable protocol, one module per backend.

Light adapters are imported here; heavy ones (OpenMM, ASE, TorchANI) load on
first use of their module so that ``import openmm_actionmin`` stays fast.
"""

from .base import (
    ASE_UNITS,
    DIMENSIONLESS,
    OPENMM_UNITS,
    REDUCED_UNITS,
    EnergyOracle,
    FiniteEnergy,
    InvalidConfigurationError,
    OracleCounters,
    OracleError,
    TorchOracle,
    Units,
)
from .pair import PairPotentialOracle, binary_lennard_jones, lennard_jones, lj_coulomb
from .synthetic import SYNTHETIC_FUNCTIONS, FunctionSpec, SyntheticOracle, make_function, random_shift
from .testing import ConformanceReport, validate_oracle

__all__ = [
    "ASE_UNITS",
    "DIMENSIONLESS",
    "SYNTHETIC_FUNCTIONS",
    "OPENMM_UNITS",
    "REDUCED_UNITS",
    "ConformanceReport",
    "EnergyOracle",
    "FiniteEnergy",
    "FunctionSpec",
    "InvalidConfigurationError",
    "OracleCounters",
    "OracleError",
    "PairPotentialOracle",
    "SyntheticOracle",
    "TorchOracle",
    "Units",
    "binary_lennard_jones",
    "lennard_jones",
    "lj_coulomb",
    "make_function",
    "random_shift",
    "validate_oracle",
]


# Heavy backends load on first attribute access (PEP 562), so that importing
# this package never imports OpenMM.
_LAZY = {"OpenMMOracle": ".openmm", "build_native_obc2": ".openmm"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
