"""BiLipNet and PLNet: an invertible bi-Lipschitz network and the PL surrogate built on it.

Written from the equations of Wang, Dvijotham and Manchester, "Monotone, Bi-Lipschitz, and
Polyak-Lojasiewicz Networks" (ICML 2024); see ``docs/method.md``.

The model::

    f(x) = 1/2 ||g(x)||^2 + c                      PLNet, scalar output [B]
    g    = O_L o M_L o ... o O_1 o M_1 o O_0        BiLipNet, [B, D] -> [B, D]

with orthogonal layers ``O_i(x) = R_i x + b_i`` and monotone Lipschitz layers ``M_i``. Every
``M_i`` satisfies, for all x1, x2,

    <M(x1) - M(x2), x1 - x2> >= mu_i ||x1 - x2||^2,   ||M(x1) - M(x2)|| <= nu_i ||x1 - x2||,

with ``mu_i = mu^(1/L)`` and ``nu_i = nu^(1/L)``; orthogonal layers preserve distances, so

    mu ||x1 - x2|| <= ||g(x1) - g(x2)|| <= nu ||x1 - x2||.

Consequently f is Polyak-Lojasiewicz with constant mu^2, its only stationary point is its
minimiser ``x* = g^{-1}(0)``, and ``||grad f(x)|| >= mu^2 ||x - x*||`` everywhere.

Where the parts live: the orthogonal layers in :mod:`.orthogonal`, the monotone layers (with the
derivation of their bounds and the Davis-Yin inverse) in :mod:`.monotone`, the network g in
:mod:`.bilipnet`; this module holds the PLNet and its config and re-exports the layers' names.

Dtype: the default is ``torch.float64`` (the oracles' dtype; the inverse reaches 1e-6 there).
float32 works too; its inverse tolerance defaults to 1e-4 absolute + 1e-5 relative to |x|.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bilipnet import BiLipNet
from .monotone import MonotoneLayer, PLNetInverseError, default_inverse_tol
from .orthogonal import (
    AUTO_HOUSEHOLDER_DIM,
    ORTHOGONAL_KINDS,
    SEMI_ORTHOGONAL_KINDS,
    CayleyOrthogonal,
    HouseholderOrthogonal,
    _randn,
    cayley,
)

__all__ = [
    "BiLipNet",
    "CayleyOrthogonal",
    "HouseholderOrthogonal",
    "MonotoneLayer",
    "PLNet",
    "PLNetConfig",
    "PLNetInverseError",
    "box_penalty",
    "cayley",
    "default_inverse_tol",
]


def box_penalty(x: Tensor, low: Union[Tensor, float], high: Union[Tensor, float]) -> Tensor:
    """Squared distance of points to an axis-aligned box, zero inside.

    The PLNet minimiser is unconstrained and can leave the search box when the network is
    nearly flat; a trainer can add ``weight * box_penalty(points, low, high).mean()`` to its loss
    (for points that carry gradients to the parameters, e.g. descent paths), or clip
    ``minimizer()`` into the box before evaluating the true energy.

    Args:
        x: Points [B, D].
        low: Lower corner, scalar or [D].
        high: Upper corner, scalar or [D].

    Returns:
        penalty [B]: ``sum_i relu(low_i - x_i)^2 + relu(x_i - high_i)^2``.
    """
    low_t = torch.as_tensor(low, dtype=x.dtype, device=x.device)
    high_t = torch.as_tensor(high, dtype=x.dtype, device=x.device)
    if bool((low_t > high_t).any()):
        raise ValueError("box_penalty: low must be <= high in every coordinate")
    return (F.relu(low_t - x) ** 2 + F.relu(x - high_t) ** 2).sum(dim=-1)


#: Output heads of a PLNet (see :class:`PLNet`).
GROWTH_KINDS = ("quadratic", "learned")


@dataclass
class PLNetConfig:
    """Configuration of a PLNet (and of the BiLipNet inside it).

    Attributes:
        dim: Input dimension D.
        depth: Number L of monotone layers (>= 1).
        hidden: Hidden block widths of every monotone layer: one int (a single block) or a
            tuple of block sizes, e.g. ``(128, 128)`` for two blocks. Total width n = sum.
        mu: Lower Lipschitz bound of g at initialisation (network level), > 0.
        nu: Upper Lipschitz bound of g at initialisation, > mu.
        orthogonal: ``"cayley"`` (dense D x D Cayley transform, one D x D solve per forward),
            ``"householder"`` (product of ``householder_reflections`` reflections, O(k D) per
            vector) or ``"auto"`` (Cayley up to D = 256, Householder above).
        householder_reflections: Number k of reflections per Householder layer.
        learn_bounds: Train ``log nu`` and ``log(tau - 1)`` with ``mu = nu / tau``; if False
            the bounds stay fixed at ``mu``, ``nu``.
        init_center: [D] where the minimiser ``x* = g^{-1}(0)`` sits at initialisation. None:
            drawn from N(0, init_scale^2) (with ``seed`` if given), so an untrained model does
            NOT sit at the origin (the global minimum of every unshifted benchmark).
        init_scale: Typical coordinate scale of the inputs; sets the random ``init_center`` and
            the spread of the hidden biases.
        seed: Seed for every random initial value; None uses torch's global generator.
        dtype: Parameter dtype (float64 default; float32 works, with looser inverse tolerance).
        device: Parameter device.
        growth: ``"quadratic"``: ``f = 1/2 ||g||^2 + c`` (the PLNet of Wang et al.).
            ``"learned"``: ``f = h(1/2 ||g||^2) + c`` with the strictly increasing head
            ``h(u) = (2 s / q) ((1 + u / s)^(q/2) - 1)``, ``q`` and ``s`` trained; see
            :class:`PLNet`. At initialisation ``q = 2`` and ``h(u) = u``.
        semi_orthogonal: How each monotone layer's ``Q`` [n, D] (``||Q|| = 1``) is
            parametrised: ``"cayley"`` (Cayley transform of a tall free matrix, the default)
            or ``"qr"`` (Q factor of a free matrix, which treats every input coordinate
            alike; the round bowl uses it). See docs/decisions.md.
        growth_min: Floor of the learned exponent, ``0 <= growth_min < 2``:
            ``q = growth_min + (2 - growth_min) exp(log_q)``. ``0`` (default) is the
            unconstrained head; the round bowl sets a floor (docs/decisions.md).
    """

    dim: int
    depth: int = 2
    hidden: Union[Tuple[int, ...], int] = 256
    mu: float = 0.1
    nu: float = 2.0
    orthogonal: str = "auto"
    householder_reflections: int = 16
    learn_bounds: bool = True
    init_center: Optional[Tensor] = None
    init_scale: float = 1.0
    seed: Optional[int] = None
    dtype: torch.dtype = torch.float64
    device: Union[str, torch.device] = "cpu"
    growth: str = "quadratic"
    growth_min: float = 0.0
    semi_orthogonal: str = "cayley"

    def __post_init__(self) -> None:
        if self.semi_orthogonal not in SEMI_ORTHOGONAL_KINDS:
            raise ValueError(
                f"PLNetConfig.semi_orthogonal must be one of {SEMI_ORTHOGONAL_KINDS}, got {self.semi_orthogonal!r}"
            )
        if self.growth not in GROWTH_KINDS:
            raise ValueError(f"PLNetConfig.growth must be one of {GROWTH_KINDS}, got {self.growth!r}")
        if not 0.0 <= self.growth_min < 2.0:
            raise ValueError(f"PLNetConfig.growth_min must be in [0, 2), got {self.growth_min!r}")
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"PLNetConfig.dim must be a positive int, got {self.dim!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"PLNetConfig.depth must be an int >= 1, got {self.depth!r}")
        blocks = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if len(blocks) == 0 or any((not isinstance(b, int)) or b < 1 for b in blocks):
            raise ValueError(
                f"PLNetConfig.hidden must be a positive int or a non-empty tuple of positive ints, got {self.hidden!r}"
            )
        if not isinstance(self.hidden, int):
            self.hidden = blocks
        if not (self.mu > 0 and self.nu > self.mu and math.isfinite(self.nu)):
            raise ValueError(
                f"PLNetConfig needs 0 < mu < nu < inf, got mu={self.mu}, nu={self.nu}; pick e.g. mu=0.1, nu=2.0"
            )
        if self.orthogonal not in ORTHOGONAL_KINDS:
            raise ValueError(f"PLNetConfig.orthogonal must be one of {ORTHOGONAL_KINDS}, got {self.orthogonal!r}")
        if self.householder_reflections < 1:
            raise ValueError("PLNetConfig.householder_reflections must be >= 1")
        if self.init_scale <= 0:
            raise ValueError(f"PLNetConfig.init_scale must be > 0, got {self.init_scale}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"PLNetConfig.dtype must be torch.float32 or torch.float64, got {self.dtype}")
        if self.init_center is not None:
            center = torch.as_tensor(self.init_center)
            if center.shape != (self.dim,):
                raise ValueError(f"PLNetConfig.init_center must have shape [{self.dim}], got {tuple(center.shape)}")
            if not bool(torch.isfinite(center).all()):
                raise ValueError("PLNetConfig.init_center contains non-finite values")

    @property
    def blocks(self) -> Tuple[int, ...]:
        """Hidden block widths as a tuple."""
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)

    @property
    def orthogonal_kind(self) -> str:
        """The orthogonal layer actually used (resolves ``"auto"``)."""
        if self.orthogonal == "auto":
            return "cayley" if self.dim <= AUTO_HOUSEHOLDER_DIM else "householder"
        return self.orthogonal


class PLNet(nn.Module):
    """Polyak-Lojasiewicz network ``f(x) = 1/2 ||g(x)||^2 + c`` with g a BiLipNet.

    f has exactly one stationary point, its global minimiser ``x* = g^{-1}(0)``, and
    ``||grad f(x)|| >= mu ||g(x)|| >= mu^2 ||x - x*||``. At initialisation ``x*`` sits at
    ``config.init_center`` (random if not given), never at the origin by construction.

    With ``config.growth = "learned"`` the output goes through a strictly increasing head,
    ``f(x) = h(u) + c`` with ``u = 1/2 ||g(x)||^2`` and
    ``h(u) = (2 s / q) ((1 + u / s)^(q/2) - 1)`` (``q = q_min + (2 - q_min) exp(log_q)`` with
    ``q_min = config.growth_min``, ``s = exp(log_s)``, both trained). ``h(0) = 0`` and
    ``h'(u) = (1 + u / s)^(q/2 - 1) > 0``, so
    ``grad f = h'(u) J_g^T g`` still vanishes only at ``x*``, the minimum value is still
    ``c`` and :meth:`minimizer` is unchanged; near ``x*`` f is PL as before, far away it
    grows like ``||g||^q`` instead of ``||g||^2`` (the PL constant then decays by ``h'``).
    Why: an energy whose envelope grows linearly (Alpine 1) or like ``|x|^(1/2)``
    (Schaffer F7) is fitted by a quadratic bowl only with its bottom dragged towards the
    middle of the sampled region; a learned exponent removes that bias.

    Args:
        config: PLNetConfig.
    """

    def __init__(self, config: PLNetConfig) -> None:
        super().__init__()
        self.config = config
        generator: Optional[torch.Generator] = None
        if config.seed is not None:
            generator = torch.Generator()
            generator.manual_seed(int(config.seed))
        self.bilipnet = BiLipNet(config, generator=generator)
        self.c = nn.Parameter(torch.zeros((), dtype=config.dtype, device=torch.device(config.device)))
        if config.growth == "learned":
            self.log_q = nn.Parameter(torch.zeros((), dtype=config.dtype, device=torch.device(config.device)))
            self.log_s = nn.Parameter(torch.zeros((), dtype=config.dtype, device=torch.device(config.device)))
        if config.init_center is not None:
            center = torch.as_tensor(config.init_center).to(dtype=config.dtype, device=torch.device(config.device))
        else:
            center = _randn((config.dim,), generator, config.dtype, torch.device(config.device)) * config.init_scale
        self._place_minimizer(center)

    @torch.no_grad()
    def _place_minimizer(self, center: Tensor) -> None:
        """Shift the biases so that g(center) = 0: first layer maps center to 0, last absorbs the rest."""
        net = self.bilipnet
        first, last = net.orthogonal[0], net.orthogonal[-1]
        first.bias.zero_()
        first.bias.sub_(first.rotate(center.unsqueeze(0), first.weights()).squeeze(0))
        residual = net(center.unsqueeze(0)).squeeze(0)
        last.bias.sub_(residual)

    @property
    def g_net(self) -> BiLipNet:
        """The BiLipNet inside."""
        return self.bilipnet

    @property
    def mu(self) -> float:
        """Current guaranteed lower Lipschitz bound of g (f is PL with constant mu^2)."""
        return self.bilipnet.bounds()[0]

    @property
    def nu(self) -> float:
        """Current guaranteed upper Lipschitz bound of g (grad f is locally ~nu^2-smooth)."""
        return self.bilipnet.bounds()[1]

    def g(self, x: Tensor) -> Tensor:
        """g(x): [B, D] -> [B, D]."""
        return self.bilipnet(x)

    def forward(self, x: Tensor) -> Tensor:
        """f(x) = h(1/2 ||g(x)||^2) + c: [B, D] -> [B] (h the identity for quadratic growth)."""
        gx = self.bilipnet(x)
        return self.head(0.5 * (gx * gx).sum(dim=1)) + self.c

    def head(self, u: Tensor) -> Tensor:
        """The strictly increasing head h(u) [B] of u [B] >= 0 (identity for quadratic growth)."""
        if self.config.growth == "quadratic":
            return u
        q = self._exponent()
        s = torch.exp(self.log_s)
        return (2.0 * s / q) * torch.expm1(0.5 * q * torch.log1p(u / s))

    def _exponent(self) -> Tensor:
        """The learned exponent q (a 0-dim tensor), never below ``config.growth_min``."""
        q_min = self.config.growth_min
        return q_min + (2.0 - q_min) * torch.exp(self.log_q)

    @property
    def growth_exponent(self) -> float:
        """The exponent q of the far-field growth ``f ~ ||g||^q`` (2 for quadratic growth)."""
        return 2.0 if self.config.growth == "quadratic" else float(self._exponent().detach())

    def minimum_value(self) -> Tensor:
        """c = min_x f(x), a 0-dim tensor (the parameter itself)."""
        return self.c

    def frozen(self) -> contextlib.AbstractContextManager:
        """Context manager: reuse detached derived weights; see ``BiLipNet.frozen``."""
        return self.bilipnet.frozen()

    def minimizer(
        self,
        *,
        tol: Optional[float] = None,
        max_iter: int = 1000,
        x0: Optional[Tensor] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """x* = g^{-1}(0) [D], detached; unconstrained (may lie outside any search box).

        Args:
            tol: Absolute tolerance on ``||g(x*)||`` (None: dtype defaults, see BiLipNet.inverse).
            max_iter: Davis-Yin iteration cap per monotone layer.
            x0: Optional warm start [D], e.g. the previous minimiser after a training step.
            rtol: Relative allowance ``||g(x*)|| <= tol + rtol ||x*||`` (see BiLipNet.inverse).

        Raises:
            PLNetInverseError: if ``||g(x*)||`` is above the tolerance.
        """
        zero = torch.zeros(1, self.config.dim, dtype=self.config.dtype, device=self.c.device)
        guess = None if x0 is None else x0.detach().reshape(1, self.config.dim)
        return self.bilipnet.inverse(zero, tol=tol, max_iter=max_iter, x0=guess, rtol=rtol).squeeze(0)

    def minimizer_with_grad(
        self,
        *,
        tol: Optional[float] = None,
        max_iter: int = 1000,
        x0: Optional[Tensor] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """x* [D] carrying the implicit gradient ``dx*/dtheta = -J^{-1} dg/dtheta`` (J = dg/dx at x*).

        The value is one Newton step from ``minimizer()``: ``x* - J^{-1} g(x*)`` with J detached
        and ``g(x*)`` differentiable in the parameters, so it equals x* to within
        ``tol / mu`` (usually better) and backpropagates exactly the implicit-function
        gradient. Use it to penalise a minimiser that leaves the search box, e.g.
        ``box_penalty(model.minimizer_with_grad()[None], low, high)``.
        Cost: one Jacobian (D vector-Jacobian products, batched) and one D x D solve.

        Raises:
            PLNetInverseError: if the inverse does not converge.
        """
        x_star = self.minimizer(tol=tol, max_iter=max_iter, x0=x0, rtol=rtol)
        with self.frozen():
            jac = torch.autograd.functional.jacobian(
                lambda x: self.bilipnet(x.unsqueeze(0)).squeeze(0), x_star, vectorize=True
            ).detach()
        gx = self.bilipnet(x_star.unsqueeze(0)).squeeze(0)
        return x_star - torch.linalg.solve(jac, gx)
