"""The System record: everything a search needs to know about one problem."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

import torch

from ..oracles.base import EnergyOracle
from ..spaces import SearchSpace


@dataclasses.dataclass
class System:
    """One energy landscape to search.

    A search method takes a ``System`` and a budget and returns a
    :class:`~openmm_actionmin.result.Result`; it never builds oracles itself.

    Attributes:
        name: Short name, e.g. ``"LJ38"`` or ``"cln025"``.
        oracle: The energy oracle.
        space: The natural search space (search variables -> configurations).
        reference_energy: Known (putative) global-minimum energy, oracle units.
        reference_positions: Known global-minimum or native configuration
            ``[*event_shape]``, if any.
        start_positions: A start configuration (e.g. an extended peptide).
        symbols: Element symbols ``[N]`` for export (atomic systems).
        types: Atom type index ``[N]`` (clusters), if any.
        topology: OpenMM topology for PDB export (peptides), if any.
        metadata: Anything else worth recording (sources, parameters).
    """

    name: str
    oracle: EnergyOracle
    space: SearchSpace
    reference_energy: Optional[float] = None
    reference_positions: Optional[torch.Tensor] = None
    start_positions: Optional[torch.Tensor] = None
    symbols: Optional[List[str]] = None
    types: Optional[List[int]] = None
    topology: Any = None
    metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_atomic(self) -> bool:
        """True when configurations are ``[N, 3]`` atoms."""
        return self.oracle.n_atoms is not None
