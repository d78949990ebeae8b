"""Exception types shared across layers (a leaf module: no package imports).

:class:`OracleError` is the base of the errors raised for bad input by the
oracles (:mod:`openmm_actionmin.oracles`) and by the PDB preparation that
feeds the OpenMM oracle (:mod:`openmm_actionmin.pdbprep`); both import it
from here, so neither depends on the other for it.
"""

__all__ = ["OracleError"]


class OracleError(ValueError):
    """Base class of the errors an oracle raises for bad input."""
