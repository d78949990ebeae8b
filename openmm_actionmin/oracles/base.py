"""The energy-oracle protocol shared by every backend.

An *oracle* answers one question for a batch of configurations: what are the
energies and forces? Every backend (OpenMM, ASE, our torch pair potentials,
TorchANI, the synthetic benchmark functions) implements the same small
contract, so search methods never need to know which backend they talk to.

Output contract (batch first, on ``oracle.device`` with ``oracle.dtype``):

* atomic oracles: ``x [B, N, 3]`` -> ``energy [B]``, ``forces [B, N, 3]``
* non-atomic oracles: ``x [B, D]`` -> ``energy [B]``, ``forces [B, D]``

``forces`` is always minus the gradient of the returned energy (including the
finite-energy transform when one is set). Calling :meth:`EnergyOracle.energy`
on a tensor that requires grad returns an energy that is differentiable through
torch autograd; backends that are not torch go through :class:`OracleFunction`,
whose backward pass uses the backend's forces.

Units are explicit: every oracle carries a :class:`Units` record. Conversions
happen inside adapters only.

Finiteness: queries at absurd geometries (coincident atoms, random boxes) give
raw energies of 1e10-1e300, inf or NaN. NaN never leaves an oracle, and every
returned energy is at most the oracle's cap:

* NaN or inf in the *input* raises :class:`InvalidConfigurationError`, naming the
  configuration and atom (or coordinate).
* The cap ``oracle.nonfinite_energy`` (default :data:`DEFAULT_NONFINITE_ENERGY`,
  1e30 in oracle energy units) is an upper bound of every energy an oracle
  returns. A configuration whose raw energy is above the cap, or whose raw
  energy or any force component is non-finite (inf, NaN, a backend exception),
  is returned *at the cap with zero forces*. Such rows are counted in
  ``oracle.counters.capped``; the non-finite ones among them also in
  ``oracle.counters.nonfinite``. As a pair of atoms closes in, the energy
  therefore rises until it reaches the cap and then stays there: it is
  non-decreasing along the path (a pass-through of finite raw energies above
  the cap would let a finite 1e72 exceed the capped value of an overflowed
  one). Forces of a capped row are zero (the cap is flat); local
  minimisers recognise such rows (energy at the cap, zero forces) and move
  them by other means. The cap bounds energies from above only.
* On request, :class:`FiniteEnergy` maps energies through a smooth, monotone
  transform (identity below a threshold, logarithmic above) with forces
  scaled consistently. Applied to oracle output it is bounded by the transform
  of the cap, ``threshold + scale * log1p((cap - threshold) / scale)``. Raw
  energies (still capped) stay available from the same oracle with
  ``transform=None``.

Why 1e30: it is far above any physical energy of the systems here (a folded
protein's potential energy is of order 1e4 kJ/mol, a compressed LJ cluster's
1e6 epsilon), so no meaningful configuration is ever capped, and far below
float64's largest value (1.8e308): sums over any batch, squares and products
of a few capped energies stay finite downstream. A lower cap such as 1e20
would buy nothing in float64, and in float32 neither value survives squaring
(float32 ends at 3.4e38). The cap is also below float32's largest value, so a
float32 oracle represents it; OpenMM's single-precision platforms overflow
near 4e30 kJ/mol for a closing pair, just above the cap.
"""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import OracleError

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence]

#: Default cap of returned energies, in oracle energy units: every energy an
#: oracle returns is at most its cap; raw energies above it, and non-finite raw
#: output, are returned as the cap with zero forces.
DEFAULT_NONFINITE_ENERGY = 1.0e30


class InvalidConfigurationError(OracleError):
    """A configuration has the wrong shape or contains NaN/inf coordinates."""


@dataclasses.dataclass(frozen=True)
class Units:
    """The units an oracle speaks at its boundary.

    Attributes:
        energy: Energy unit, e.g. ``"kJ/mol"``, ``"epsilon"``, ``"eV"``,
            ``"dimensionless"``.
        length: Length unit, e.g. ``"nm"``, ``"sigma"``, ``"angstrom"``,
            ``"dimensionless"``.
    """

    energy: str
    length: str

    @property
    def force(self) -> str:
        """The force unit, energy per length."""
        return f"{self.energy}/{self.length}"


#: OpenMM's native units.
OPENMM_UNITS = Units(energy="kJ/mol", length="nm")
#: Reduced Lennard-Jones units (epsilon = sigma = 1).
REDUCED_UNITS = Units(energy="epsilon", length="sigma")
#: Synthetic test functions have no physical units.
DIMENSIONLESS = Units(energy="dimensionless", length="dimensionless")
#: ASE's units.
ASE_UNITS = Units(energy="eV", length="angstrom")


@dataclasses.dataclass
class OracleCounters:
    """Cost accounting, so that benchmarks compare methods fairly.

    Attributes:
        force_calls: Configurations evaluated (each batch row counts once).
        batches: Calls into the backend.
        seconds: Wall-clock seconds spent inside the backend.
        nonfinite: Configurations whose raw backend output was non-finite
            and was replaced by the documented cap.
        capped: Configurations returned at the cap with zero forces: the
            non-finite ones and those whose finite raw energy was above the
            cap.
    """

    force_calls: int = 0
    batches: int = 0
    seconds: float = 0.0
    nonfinite: int = 0
    capped: int = 0

    def snapshot(self) -> "OracleCounters":
        """Return a copy of the current counts."""
        return dataclasses.replace(self)

    def reset(self) -> None:
        """Set every count back to zero."""
        self.force_calls = 0
        self.batches = 0
        self.seconds = 0.0
        self.nonfinite = 0
        self.capped = 0


@dataclasses.dataclass(frozen=True)
class FiniteEnergy:
    """A smooth, monotone, bounded map of raw energies.

    ``E' = E`` for ``E <= threshold`` and
    ``E' = threshold + scale * log1p((E - threshold) / scale)`` above. The map is
    continuously differentiable (slope 1 at the threshold), strictly increasing,
    and grows only logarithmically, so energies of 1e38 become about
    ``threshold + 87 * scale``. Oracle energies are at most the oracle's cap,
    so the transformed energies of an oracle are at most the transform of the
    cap (``1e3 + 100 * log1p(1e28)``, about 7.4e3, for the defaults and the
    default cap), and a non-decreasing sequence of energies stays
    non-decreasing. Forces are multiplied by the slope
    ``dE'/dE = 1 / (1 + (E - threshold) / scale)`` so that they remain minus the
    gradient of the transformed energy. Energies below the threshold, the
    physically interesting part, are untouched.

    Attributes:
        threshold: Energy above which the logarithmic branch starts, in oracle
            energy units.
        scale: Width of the logarithmic branch, in oracle energy units.
    """

    threshold: float = 1.0e3
    scale: float = 1.0e2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and math.isfinite(self.scale)):
            raise ValueError("FiniteEnergy threshold and scale must be finite")
        if self.scale <= 0:
            raise ValueError(f"FiniteEnergy scale must be positive, got {self.scale}")

    def __call__(self, energy: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Transform energies.

        Args:
            energy: Raw energies ``[B]`` (finite, as every oracle returns).

        Returns:
            ``(transformed [B], slope [B])`` where ``slope = dE'/dE``.
        """
        excess = torch.clamp(energy - self.threshold, min=0.0) / self.scale
        above = energy > self.threshold
        transformed = torch.where(above, self.threshold + self.scale * torch.log1p(excess), energy)
        slope = torch.where(above, 1.0 / (1.0 + excess), torch.ones_like(energy))
        return transformed, slope


class EnergyOracle(ABC):
    """Batched energies and forces of one system, in explicit units.

    Subclasses implement :meth:`_evaluate` (raw energies and forces of a
    validated, detached batch). Everything else (validation, counters,
    non-finite handling, the finite transform, autograd) lives here.

    Attributes:
        units: The energy and length units of inputs and outputs.
        dtype: Floating dtype of inputs and outputs.
        device: Device of inputs and outputs.
        transform: Optional :class:`FiniteEnergy` applied to every output.
        nonfinite_energy: The cap, an upper bound of every returned energy
            (oracle energy units, finite). Raw energies above it and non-finite
            raw output are returned as the cap with zero forces.
        counters: :class:`OracleCounters` of this oracle.
    """

    def __init__(
        self,
        *,
        n_atoms: Optional[int] = None,
        dim: Optional[int] = None,
        units: Units,
        dtype: torch.dtype = torch.float64,
        device: Union[str, torch.device] = "cpu",
        transform: Optional[FiniteEnergy] = None,
        nonfinite_energy: float = DEFAULT_NONFINITE_ENERGY,
    ) -> None:
        if (n_atoms is None) == (dim is None):
            raise ValueError("give exactly one of n_atoms (atomic systems) or dim (functions)")
        size = n_atoms if n_atoms is not None else dim
        if int(size) < 1:
            raise OracleError(
                f"an oracle needs at least one {'atom' if n_atoms is not None else 'dimension'}, got {size}"
            )
        self._n_atoms = None if n_atoms is None else int(n_atoms)
        self._dim = int(dim) if dim is not None else 3 * int(n_atoms)
        self.units = units
        self.dtype = dtype
        self.device = torch.device(device)
        self.transform = transform
        if not math.isfinite(float(nonfinite_energy)):
            raise ValueError(f"nonfinite_energy (the energy cap) must be finite, got {nonfinite_energy}")
        self.nonfinite_energy = float(nonfinite_energy)
        self.counters = OracleCounters()

    # ------------------------------------------------------------------ shape
    @property
    def n_atoms(self) -> Optional[int]:
        """Number of atoms, or ``None`` for a non-atomic function."""
        return self._n_atoms

    @property
    def dim(self) -> int:
        """Degrees of freedom of one configuration (``3 * n_atoms`` for atoms)."""
        return self._dim

    @property
    def event_shape(self) -> Tuple[int, ...]:
        """Shape of one configuration: ``(N, 3)`` or ``(D,)``."""
        return (self._n_atoms, 3) if self._n_atoms is not None else (self._dim,)

    def _shape_text(self) -> str:
        return "[B, %d, 3]" % self._n_atoms if self._n_atoms is not None else "[B, %d]" % self._dim

    # ------------------------------------------------------------- backend
    @abstractmethod
    def _evaluate(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Raw energies and forces of a validated batch.

        Args:
            x: Configurations ``[B, *event_shape]``, detached, on ``device``
                with ``dtype``, all finite.

        Returns:
            ``(energy [B], forces [B, *event_shape])`` in the oracle's units. May
            contain non-finite values; the caller handles them.
        """

    # ------------------------------------------------------------ helpers
    def as_batch(self, x: ArrayLike) -> torch.Tensor:
        """Convert input to a validated batch on this oracle's device and dtype.

        Args:
            x: Configurations ``[B, *event_shape]`` (tensor, array or nested
                sequence).

        Returns:
            A tensor ``[B, *event_shape]`` (keeps ``requires_grad``).

        Raises:
            InvalidConfigurationError: wrong shape, empty batch, or NaN/inf.
        """
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        if not torch.is_floating_point(x):
            x = x.to(torch.float64)
        x = x.to(device=self.device, dtype=self.dtype)
        expected = self.event_shape
        if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            hint = ""
            if tuple(x.shape) == expected:
                hint = "; this looks like a single configuration: add a batch dimension with x[None]"
            raise InvalidConfigurationError(
                f"{type(self).__name__} expects configurations of shape {self._shape_text()}, "
                f"got {tuple(x.shape)}{hint}"
            )
        if x.shape[0] == 0:
            raise InvalidConfigurationError(
                f"{type(self).__name__} got an empty batch (shape {tuple(x.shape)}); pass at least one configuration"
            )
        bad = ~torch.isfinite(x.detach())
        if bool(bad.any()):
            idx = torch.nonzero(bad)[0].tolist()
            if self._n_atoms is not None:
                where = f"configuration {idx[0]}, atom {idx[1]} (coordinate {'xyz'[idx[2]]})"
            else:
                where = f"configuration {idx[0]}, coordinate {idx[1]}"
            raise InvalidConfigurationError(
                f"{type(self).__name__}: non-finite input at {where}: value "
                f"{x.detach()[tuple(idx)].item()}; {int(bad.sum())} non-finite value(s) in all. "
                "Remove NaN/inf coordinates before evaluating."
            )
        return x

    def _raw(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Evaluate and count; rows above the cap or non-finite become the cap.

        A row is *capped* (energy ``nonfinite_energy``, zero forces) when its raw
        energy or any force component is non-finite, or its raw energy exceeds
        the cap, so the cap bounds every returned energy.
        """
        start = time.perf_counter()
        energy, forces = self._evaluate(x.detach())
        self.counters.seconds += time.perf_counter() - start
        self.counters.force_calls += int(x.shape[0])
        self.counters.batches += 1
        energy = energy.to(device=self.device, dtype=self.dtype).reshape(x.shape[0])
        forces = forces.to(device=self.device, dtype=self.dtype).reshape(x.shape)
        finite = torch.isfinite(energy) & torch.isfinite(forces.reshape(x.shape[0], -1)).all(dim=1)
        ok = finite & (energy <= self.nonfinite_energy)
        if not bool(ok.all()):
            self.counters.nonfinite += int((~finite).sum())
            self.counters.capped += int((~ok).sum())
            energy = torch.where(ok, energy, torch.full_like(energy, self.nonfinite_energy))
            mask = ok.reshape((-1,) + (1,) * (forces.dim() - 1))
            forces = torch.where(mask, forces, torch.zeros_like(forces))
        return energy, forces

    # -------------------------------------------------------------- public
    def energy_and_forces(
        self, x: ArrayLike, *, transform: Union[FiniteEnergy, None, str] = "default"
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Energies and forces of a batch (no autograd graph).

        Args:
            x: Configurations ``[B, N, 3]`` or ``[B, D]``.
            transform: ``"default"`` uses ``self.transform``; ``None`` returns raw
                energies; a :class:`FiniteEnergy` overrides.

        Returns:
            ``(energy [B], forces [B, N, 3] or [B, D])``, detached.
        """
        x = self.as_batch(x)
        energy, forces = self._raw(x)
        tf = self.transform if isinstance(transform, str) else transform
        if tf is not None:
            energy, slope = tf(energy)
            forces = forces * slope.reshape((-1,) + (1,) * (forces.dim() - 1))
        return energy, forces

    def forces(self, x: ArrayLike, **kwargs) -> torch.Tensor:
        """Forces ``[B, *event_shape]``; see :meth:`energy_and_forces`."""
        return self.energy_and_forces(x, **kwargs)[1]

    def energy(self, x: ArrayLike, *, transform: Union[FiniteEnergy, None, str] = "default") -> torch.Tensor:
        """Energies ``[B]``, differentiable when ``x`` requires grad.

        Args:
            x: Configurations ``[B, N, 3]`` or ``[B, D]``.
            transform: As in :meth:`energy_and_forces`.

        Returns:
            ``energy [B]``. If ``x.requires_grad``, backward gives
            ``-forces * grad_output``.
        """
        x = self.as_batch(x)
        if x.requires_grad and torch.is_grad_enabled():
            return OracleFunction.apply(x, self, transform)
        return self.energy_and_forces(x, transform=transform)[0]

    __call__ = energy

    def gradient(self, x: ArrayLike, **kwargs) -> torch.Tensor:
        """Gradient of the energy, ``-forces``, ``[B, *event_shape]``."""
        return -self.forces(x, **kwargs)

    def with_transform(self, transform: Optional[FiniteEnergy]) -> "EnergyOracle":
        """Set the default finite transform and return ``self`` (for chaining)."""
        self.transform = transform
        return self

    def reset_counters(self) -> None:
        """Zero :attr:`counters`."""
        self.counters.reset()

    def close(self) -> None:
        """Release backend resources (contexts, threads). Default: nothing."""

    def __enter__(self) -> "EnergyOracle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        size = f"n_atoms={self._n_atoms}" if self._n_atoms is not None else f"dim={self._dim}"
        return (
            f"{type(self).__name__}({size}, units={self.units.energy}|{self.units.length}, "
            f"dtype={self.dtype}, device={self.device})"
        )


class TorchOracle(EnergyOracle):
    """Base for oracles whose energy is a torch expression.

    Subclasses implement :meth:`energy_fn` (``[B, *event_shape] -> [B]``) in
    torch; forces come from autograd. Works on any device.
    """

    @abstractmethod
    def energy_fn(self, x: torch.Tensor) -> torch.Tensor:
        """Raw energy ``[B]`` of configurations ``x [B, *event_shape]``, in torch."""

    def _evaluate(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            energy = self.energy_fn(xg)
            (grad,) = torch.autograd.grad(energy.sum(), xg)
        return energy.detach(), -grad


class OracleFunction(torch.autograd.Function):
    """Autograd bridge: energy forward, ``-forces`` backward, for any backend."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, oracle: EnergyOracle, transform) -> torch.Tensor:  # noqa: D102
        energy, forces = oracle.energy_and_forces(x.detach(), transform=transform)
        ctx.save_for_backward(forces)
        return energy

    @staticmethod
    def backward(ctx, grad_energy: torch.Tensor):  # noqa: D102
        (forces,) = ctx.saved_tensors
        shape = (-1,) + (1,) * (forces.dim() - 1)
        return -forces * grad_energy.reshape(shape), None, None
