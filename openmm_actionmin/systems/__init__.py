"""Ready-made systems: clusters, peptides and synthetic functions.

Each builder returns a :class:`System` holding the oracle, the natural search
space and the reference answer where one is known.
"""

from .base import System
from .clusters import binary_lj, ionic_cluster, lj_cluster, lj_reference_energies, named_system, stridernet_binary_lj
from .peptides import from_pdb, peptide

__all__ = [
    "System",
    "binary_lj",
    "from_pdb",
    "ionic_cluster",
    "lj_cluster",
    "lj_reference_energies",
    "named_system",
    "peptide",
    "stridernet_binary_lj",
]
