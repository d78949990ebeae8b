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
