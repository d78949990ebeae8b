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
from .testing import ConformanceReport, validate_oracle

__all__ = [
    "ASE_UNITS",
    "DIMENSIONLESS",
    "OPENMM_UNITS",
    "REDUCED_UNITS",
    "ConformanceReport",
    "EnergyOracle",
    "FiniteEnergy",
    "InvalidConfigurationError",
    "OracleCounters",
    "OracleError",
    "PairPotentialOracle",
    "TorchOracle",
    "Units",
    "binary_lennard_jones",
    "lennard_jones",
    "lj_coulomb",
    "validate_oracle",
]
