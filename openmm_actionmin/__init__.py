"""openmm_actionmin: global minima of energy landscapes.

Peptides under AMBER force fields (through OpenMM), atomic clusters under
Lennard-Jones and Coulomb potentials, and synthetic test functions, searched
with an action-functional-trained PLNet and honest baselines beside it.
"""

__version__ = "0.1.0"

from .data import data_path
from .oracles import EnergyOracle, FiniteEnergy, Units, validate_oracle

__all__ = ["EnergyOracle", "FiniteEnergy", "Units", "__version__", "data_path", "validate_oracle"]
