"""Search spaces: where a global search draws and moves its variables.

A search method works on *search variables* ``z [B, d]``; a space maps them to
oracle configurations ``x [B, *event_shape]`` differentiably with
:meth:`SearchSpace.to_config`. A uniform Cartesian box suits clusters and test
functions; a peptide needs displacements around a start or torsion angles
(see :mod:`openmm_actionmin.torsions`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Sequence, Tuple, Union

import torch


class SearchSpace(ABC):
    """Search variables ``z [B, dim]`` and their map to configurations.

    Attributes:
        dim: Number of search variables d.
        event_shape: Shape of one oracle configuration.
        lower: Lower bounds of z ``[dim]``.
        upper: Upper bounds of z ``[dim]``.
    """

    dim: int
    event_shape: Tuple[int, ...]
    lower: torch.Tensor
    upper: torch.Tensor

    @abstractmethod
    def to_config(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``z [B, dim]`` to configurations ``[B, *event_shape]`` (differentiable)."""

    def from_config(self, x: torch.Tensor) -> torch.Tensor:
        """Map configurations ``[B, *event_shape]`` back to ``z [B, dim]`` where possible."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse map")

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Uniform samples ``z [n, dim]`` inside the bounds."""
        u = torch.rand((n, self.dim), generator=generator, dtype=self.lower.dtype, device="cpu").to(self.lower.device)
        return self.lower + (self.upper - self.lower) * u

    def clip(self, z: torch.Tensor) -> torch.Tensor:
        """Project ``z [B, dim]`` into the bounds."""
        return torch.maximum(torch.minimum(z, self.upper), self.lower)

    def contains(self, z: torch.Tensor) -> torch.Tensor:
        """Boolean ``[B]``: which rows of ``z`` lie inside the bounds."""
        return ((z >= self.lower) & (z <= self.upper)).all(dim=-1)

    @property
    def width(self) -> torch.Tensor:
        """``upper - lower`` ``[dim]``."""
        return self.upper - self.lower


class Box(SearchSpace):
    """An axis-aligned box of Cartesian coordinates; ``z`` is ``x`` flattened.

    Args:
        lower: Lower bound, a scalar or ``[dim]``.
        upper: Upper bound, a scalar or ``[dim]``.
        event_shape: Shape of one configuration, ``(N, 3)`` or ``(D,)``.
        dtype: Dtype of the bounds.
        device: Device of the bounds.
    """

    def __init__(
        self,
        lower: Union[float, Sequence[float], torch.Tensor],
        upper: Union[float, Sequence[float], torch.Tensor],
        event_shape: Tuple[int, ...],
        *,
        dtype: torch.dtype = torch.float64,
        device: Union[str, torch.device] = "cpu",
    ) -> None:
        self.event_shape = tuple(int(s) for s in event_shape)
        self.dim = 1
        for s in self.event_shape:
            self.dim *= s
        self.lower = torch.as_tensor(lower, dtype=dtype, device=device).expand(self.dim).clone()
        self.upper = torch.as_tensor(upper, dtype=dtype, device=device).expand(self.dim).clone()
        if not bool((self.upper > self.lower).all()):
            raise ValueError("Box needs upper > lower in every coordinate")

    def to_config(self, z: torch.Tensor) -> torch.Tensor:
        """Reshape ``z [B, dim]`` to ``[B, *event_shape]``."""
        return z.reshape((z.shape[0],) + self.event_shape)

    def from_config(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten ``x [B, *event_shape]`` to ``[B, dim]``."""
        return x.reshape(x.shape[0], self.dim)

    @classmethod
    def cube(cls, half_width: float, event_shape: Tuple[int, ...], *, center: float = 0.0, **kwargs) -> "Box":
        """The cube ``[center - h, center + h]^dim``."""
        return cls(center - half_width, center + half_width, event_shape, **kwargs)


class Displacement(SearchSpace):
    """Cartesian displacements of every atom within ``radius`` of a start.

    ``x = start + z.reshape(N, 3)``, with each ``z`` coordinate in
    ``[-radius, radius]``.

    Args:
        start: Start configuration ``[N, 3]``.
        radius: Maximum displacement per coordinate, in oracle length units.
    """

    def __init__(self, start: torch.Tensor, radius: float) -> None:
        start = torch.as_tensor(start)
        if not torch.is_floating_point(start):
            start = start.to(torch.float64)
        self.start = start
        self.event_shape = tuple(start.shape)
        self.dim = start.numel()
        self.lower = torch.full((self.dim,), -float(radius), dtype=start.dtype, device=start.device)
        self.upper = -self.lower

    def to_config(self, z: torch.Tensor) -> torch.Tensor:
        """``start + z`` as ``[B, N, 3]``."""
        return self.start + z.reshape((z.shape[0],) + self.event_shape)

    def from_config(self, x: torch.Tensor) -> torch.Tensor:
        """``x - start`` flattened to ``[B, dim]``."""
        return (x - self.start).reshape(x.shape[0], self.dim)
