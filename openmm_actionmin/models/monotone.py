"""Monotone Lipschitz layers of the BiLipNet, with certified bounds and a Davis-Yin inverse.

Monotone layer (hidden blocks k = 1..m of widths n_k, n = sum n_k, gamma = nu_i - mu_i)::

    z_k = relu(V_k z_{k-1} + sqrt(2 gamma) S_k x + b_k)                      [B, n_k]
    y   = mu_i x + b_y + sqrt(gamma / 2) sum_k S_k^T z_k                     [B, D]
    S_k = A_k Q_k - B_k Q_{k-1},   V_k = 2 B_k A_{k-1}^T

where ``Q = [Q_1; ...; Q_m]`` (n x D) has ``||Q|| <= 1`` (orthonormal rows or columns, from a
Cayley transform) and each ``[A_k  B_k]`` (n_k x (n_k + n_{k-1})) has orthonormal rows
(``A_k A_k^T + B_k B_k^T = I``; ``B_1`` is empty). Why this is certified (our derivation, the
paper's argument in short): write the stacked blocks as ``S = (A - B) Q`` with A block-diagonal
and B block-subdiagonal, so ``V = 2 B A^T``. The ReLU increment obeys
``<dz, dv - dz> >= 0`` (dv the pre-activation increment), which gives
``<dH, dx> >= 1/2 dz^T (I - V) dz``; and ``S S^T <= (A - B)(A - B)^T = I - A B^T - B A^T =
sym(I - V)``, so ``<dH, dx> >= ||dH||^2 / gamma`` for ``H = y - mu_i x``: H is
(1/gamma)-cocoercive, hence ``mu_i x + H`` is mu_i-strongly monotone and (mu_i + gamma)-Lipschitz.

Inverse of a monotone layer: eliminating x from the output equation leaves a fixed point in z,
``z = relu(V z - (gamma/mu_i) S S^T z + c(y))``, i.e. ``0 in N_+(z) + (I - V) z - c(y) +
(gamma/mu_i) S S^T z`` (normal cone of the orthant + a monotone affine operator + a
(mu_i/gamma)-cocoercive one). Davis-Yin three-operator splitting with step
``alpha = mu_i / gamma`` solves it; ``x`` then follows in closed form and its residual
``||M(x) - y||`` is checked. Orthogonal layers invert exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .orthogonal import _rand, _randn, _semi_orthogonal, cayley, isotropic_tall_init

__all__ = ["MonotoneLayer", "PLNetInverseError", "default_inverse_tol"]


class PLNetInverseError(RuntimeError):
    """The iterative inverse of a BiLipNet did not reach its tolerance.

    Attributes:
        residual: Largest residual ``||layer(x) - y||`` over the batch when the solver stopped.
        tol: The tolerance that was asked for.
        iterations: Iterations spent.
    """

    def __init__(self, message: str, *, residual: float, tol: float, iterations: int) -> None:
        super().__init__(message)
        self.residual = residual
        self.tol = tol
        self.iterations = iterations


def default_inverse_tol(dtype: torch.dtype) -> Tuple[float, float]:
    """(tol, rtol) used by the inverses when ``tol=None``.

    float64: (1e-6, 0), a purely absolute criterion. float32: (1e-4, 1e-5); its rounding floor
    grows with the size of the numbers involved (measured: ~1e-3 absolute at |x| ~ 3000), so the
    allowance grows with ``max(||x||, ||y||)``.
    """
    return (1.0e-6, 0.0) if dtype == torch.float64 else (1.0e-4, 1.0e-5)


def _row_residual(out: Tensor, y: Tensor, x: Tensor, tol: float, rtol: float) -> Tuple[float, bool]:
    """(max_b ||out_b - y_b||, every row within ``tol + rtol max(||x_b||, ||y_b||)``)."""
    if out.shape[0] == 0:
        return 0.0, True
    res = (out - y).norm(dim=1)
    allowed = tol + rtol * torch.maximum(x.norm(dim=1), y.norm(dim=1))
    return float(res.max()), bool((res <= allowed).all())


@dataclass
class _MonotoneWeights:
    """Derived weights of a monotone layer (see MonotoneLayer)."""

    mu: Tensor  # scalar
    gamma: Tensor  # scalar
    s: Tensor  # [n, D]
    a: List[Tensor] = field(default_factory=list)  # A_k [n_k, n_k] (A_1 omitted for one block)
    b: List[Tensor] = field(default_factory=list)  # B_k [n_k, n_{k-1}], k >= 2


class MonotoneLayer(nn.Module):
    """Strongly monotone, Lipschitz residual layer with certified bounds (mu_i, nu_i).

    See the module docstring for the equations. The bounds are not stored here: the owner
    (BiLipNet) passes the current per-layer ``mu_i`` and ``gamma_i = nu_i - mu_i``.

    Args:
        dim: D.
        blocks: Hidden block widths (n_1, ..., n_m).
        init_scale: Spread of the initial hidden biases, U(-init_scale, init_scale).
        semi_orthogonal: ``"cayley"`` or ``"qr"`` (see :class:`PLNetConfig`).
    """

    def __init__(
        self,
        dim: int,
        blocks: Tuple[int, ...],
        *,
        init_scale: float,
        generator: Optional[torch.Generator],
        dtype: torch.dtype,
        device,
        semi_orthogonal: str = "cayley",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.semi_orthogonal = semi_orthogonal
        self.blocks = tuple(blocks)
        n = sum(self.blocks)
        self.width = n
        big, small = max(n, dim), min(n, dim)
        if dim > n and semi_orthogonal == "cayley":
            # The tall side is the input coordinates: spread the layer's weight over all of them.
            self.q_weight = nn.Parameter(isotropic_tall_init(dim, n, generator, dtype, device))
        else:
            # The tall side is the hidden units (exchangeable), or the QR map (Haar at a Gaussian
            # init): the Gaussian init is kept.
            self.q_weight = nn.Parameter(_randn((big, small), generator, dtype, device) / math.sqrt(small))
        # [A_k B_k] from the Cayley transform of a [(n_k + n_{k-1}), n_k] free matrix (transposed).
        # For a single block, A_1 is redundant with Q and is left out.
        self.ab_weights = nn.ParameterList()
        if len(self.blocks) > 1:
            prev = 0
            for nk in self.blocks:
                self.ab_weights.append(nn.Parameter(_randn((nk + prev, nk), generator, dtype, device) / math.sqrt(nk)))
                prev = nk
        self.bias_hidden = nn.Parameter((2.0 * _rand((n,), generator, dtype, device) - 1.0) * init_scale)
        self.bias_out = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device))

    def weights(self, mu: Tensor, gamma: Tensor) -> _MonotoneWeights:
        """Derived weights for the given per-layer bounds."""
        q = _semi_orthogonal(self.q_weight, self.width, self.dim, self.semi_orthogonal)  # [n, D], ||Q|| = 1
        if len(self.blocks) == 1:
            return _MonotoneWeights(mu=mu, gamma=gamma, s=q)
        a_list: List[Tensor] = []
        b_list: List[Tensor] = []
        s_rows: List[Tensor] = []
        offsets = [0]
        for nk in self.blocks:
            offsets.append(offsets[-1] + nk)
        for k, nk in enumerate(self.blocks):
            ab = cayley(self.ab_weights[k]).T  # [n_k, n_k + n_{k-1}], orthonormal rows
            a_k, b_k = ab[:, :nk], ab[:, nk:]
            q_k = q[offsets[k] : offsets[k + 1]]
            s_k = a_k @ q_k
            if k > 0:
                s_k = s_k - b_k @ q[offsets[k - 1] : offsets[k]]
            a_list.append(a_k)
            b_list.append(b_k)
            s_rows.append(s_k)
        return _MonotoneWeights(mu=mu, gamma=gamma, s=torch.cat(s_rows, dim=0), a=a_list, b=b_list)

    def hidden(self, x: Tensor, w: _MonotoneWeights) -> Tensor:
        """Hidden activations z [B, n] for inputs x [B, D]."""
        pre = math.sqrt(2.0) * torch.sqrt(w.gamma) * (x @ w.s.T) + self.bias_hidden  # [B, n]
        if len(self.blocks) == 1:
            return F.relu(pre)
        zs: List[Tensor] = []
        start = 0
        for k, nk in enumerate(self.blocks):
            pk = pre[:, start : start + nk]
            if k > 0:
                pk = pk + self._v_block(zs[-1], w, k)
            zs.append(F.relu(pk))
            start += nk
        return torch.cat(zs, dim=1)

    @staticmethod
    def _v_block(z_prev: Tensor, w: _MonotoneWeights, k: int) -> Tensor:
        """``V_k z_{k-1} = 2 B_k A_{k-1}^T z_{k-1}`` for rows: [B, n_{k-1}] -> [B, n_k]."""
        return 2.0 * (z_prev @ w.a[k - 1]) @ w.b[k].T

    def _v_apply(self, z: Tensor, w: _MonotoneWeights) -> Tensor:
        """``V z`` for rows of z: [B, n] -> [B, n] (zero for a single block)."""
        if len(self.blocks) == 1:
            return torch.zeros_like(z)
        out = [torch.zeros_like(z[:, : self.blocks[0]])]
        start = 0
        for k in range(1, len(self.blocks)):
            prev = z[:, start : start + self.blocks[k - 1]]
            out.append(self._v_block(prev, w, k))
            start += self.blocks[k - 1]
        return torch.cat(out, dim=1)

    def apply_weights(self, x: Tensor, w: _MonotoneWeights) -> Tensor:
        """Layer output y [B, D] for inputs x [B, D]."""
        z = self.hidden(x, w)
        return w.mu * x + self.bias_out + torch.sqrt(w.gamma / 2.0) * (z @ w.s)

    def _resolvent(self, rhs: Tensor, w: _MonotoneWeights, alpha: Tensor) -> Tensor:
        """Solve ``((1 + alpha) I - alpha V) z = rhs`` by block forward substitution: [B, n] -> [B, n]."""
        scale = 1.0 / (1.0 + alpha)
        if len(self.blocks) == 1:
            return rhs * scale
        zs: List[Tensor] = []
        start = 0
        for k, nk in enumerate(self.blocks):
            rk = rhs[:, start : start + nk]
            if k > 0:
                rk = rk + alpha * self._v_block(zs[-1], w, k)
            zs.append(rk * scale)
            start += nk
        return torch.cat(zs, dim=1)

    def inverse_weights(
        self,
        y: Tensor,
        w: _MonotoneWeights,
        *,
        tol: float,
        max_iter: int,
        rtol: float = 0.0,
        x0: Optional[Tensor] = None,
        check_every: int = 10,
    ) -> Tuple[Tensor, float, int]:
        """Solve ``layer(x) = y`` for x by Davis-Yin splitting (no autograd).

        Args:
            y: Targets [B, D].
            w: Derived weights (detached).
            tol: Absolute tolerance on ``||layer(x_b) - y_b||``.
            max_iter: Iteration cap.
            rtol: Relative allowance: row b stops at ``tol + rtol max(||x_b||, ||y_b||)``.
            x0: Optional warm start [B, D] (a guess of the solution); the splitting state is set
                to the fixed point it would have if x0 were exact.
            check_every: Residual check period.

        Returns:
            (x [B, D], final max residual, iterations used). The caller decides what a residual
            above ``tol`` means.
        """
        mu, gamma = w.mu, w.gamma
        s = w.s
        alpha = mu / gamma
        c = (torch.sqrt(2.0 * gamma) / mu) * ((y - self.bias_out) @ s.T) + self.bias_hidden  # [B, n]
        coef = gamma / mu
        half = torch.sqrt(gamma / 2.0)

        def recover(z: Tensor) -> Tensor:
            return (y - self.bias_out - half * (z @ s)) / mu

        def residual(x: Tensor) -> Tuple[float, bool]:
            return _row_residual(self.apply_weights(x, w), y, x, tol, rtol)

        if x0 is None:
            w_state = torch.zeros_like(c)
            x = recover(F.relu(c))
        else:
            # DYS fixed point: w = z + alpha ((I - V) z - c) with z the hidden state at x0.
            z0 = self.hidden(x0, w)
            w_state = z0 + alpha * (z0 - self._v_apply(z0, w) - c)
            x = x0
        res, ok = residual(x)
        it = 0
        while it < max_iter and not ok:
            steps = min(check_every, max_iter - it)
            for _ in range(steps):
                rhs = w_state + alpha * c
                z_b = self._resolvent(rhs, w, alpha)
                z_a = F.relu(2.0 * z_b - w_state - alpha * coef * ((z_b @ s) @ s.T))
                w_state = w_state + z_a - z_b
            it += steps
            x = recover(z_a)
            res, ok = residual(x)
        return x, res, it
