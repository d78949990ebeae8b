"""BiLipNet: orthogonal and monotone layers composed into an invertible bi-Lipschitz map g.

``g = O_L o M_L o ... o O_1 o M_1 o O_0`` with ``mu ||dx|| <= ||dg|| <= nu ||dx||``; the
inverse runs layer by layer (exact for the orthogonal layers, Davis-Yin for the monotone ones,
see :mod:`.monotone`) and checks its residual.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, List, Optional, Protocol, Tuple, Union

import torch
from torch import Tensor, nn

from .monotone import MonotoneLayer, PLNetInverseError, _row_residual, default_inverse_tol
from .orthogonal import CayleyOrthogonal, HouseholderOrthogonal

__all__ = ["BiLipNet", "BiLipNetSettings"]


class BiLipNetSettings(Protocol):
    """What a :class:`BiLipNet` reads from its config (:class:`~.plnet.PLNetConfig` provides it).

    Attributes:
        dim: Input dimension D.
        depth: Number L of monotone layers.
        blocks: Hidden block widths of every monotone layer.
        mu: Lower Lipschitz bound at initialisation.
        nu: Upper Lipschitz bound at initialisation.
        learn_bounds: Whether the bounds are trained.
        orthogonal_kind: ``"cayley"`` or ``"householder"``.
        householder_reflections: Reflections per Householder layer.
        semi_orthogonal: Parametrisation of the monotone layers' ``Q``.
        init_scale: Typical coordinate scale of the inputs.
        dtype: Parameter dtype.
        device: Parameter device.
    """

    dim: int
    depth: int
    mu: float
    nu: float
    learn_bounds: bool
    householder_reflections: int
    semi_orthogonal: str
    init_scale: float
    dtype: torch.dtype
    device: Union[str, torch.device]

    @property
    def blocks(self) -> Tuple[int, ...]: ...

    @property
    def orthogonal_kind(self) -> str: ...


class BiLipNet(nn.Module):
    """Invertible network g with ``mu ||dx|| <= ||dg|| <= nu ||dx||``.

    Structure: orthogonal layer, then ``depth`` times (monotone layer, orthogonal layer).
    ``bounds()`` gives the (mu, nu) currently guaranteed; with ``learn_bounds`` they are trained
    through ``log nu`` and ``log(tau - 1)``, ``mu = nu / tau``.

    Args:
        config: The settings (a :class:`~.plnet.PLNetConfig`: dim, depth, hidden, bounds,
            orthogonal kind, dtype; see :class:`BiLipNetSettings`).
        generator: Random generator for the initial values (None: torch's global one).
    """

    def __init__(self, config: BiLipNetSettings, *, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.depth = config.depth
        dtype, device = config.dtype, torch.device(config.device)
        kind = config.orthogonal_kind

        def make_orth() -> nn.Module:
            if kind == "cayley":
                return CayleyOrthogonal(config.dim, generator=generator, dtype=dtype, device=device)
            return HouseholderOrthogonal(
                config.dim, config.householder_reflections, generator=generator, dtype=dtype, device=device
            )

        self.orthogonal = nn.ModuleList([make_orth() for _ in range(config.depth + 1)])
        self.monotone = nn.ModuleList(
            [
                MonotoneLayer(
                    config.dim,
                    config.blocks,
                    init_scale=config.init_scale,
                    semi_orthogonal=config.semi_orthogonal,
                    generator=generator,
                    dtype=dtype,
                    device=device,
                )
                for _ in range(config.depth)
            ]
        )
        log_nu = torch.tensor(math.log(config.nu), dtype=dtype, device=device)
        log_tau_m1 = torch.tensor(math.log(config.nu / config.mu - 1.0), dtype=dtype, device=device)
        if config.learn_bounds:
            self.log_nu = nn.Parameter(log_nu)
            self.log_tau_minus_one = nn.Parameter(log_tau_m1)
        else:
            self.register_buffer("log_nu", log_nu)
            self.register_buffer("log_tau_minus_one", log_tau_m1)
        self._frozen: Optional[list] = None
        self.last_inverse_iterations: List[int] = []
        """Davis-Yin iterations per monotone layer (first layer first) of the latest inverse."""

    # ----------------------------------------------------------------------------- bounds
    def _bound_tensors(self) -> Tuple[Tensor, Tensor]:
        """Network-level (mu, nu) as tensors (differentiable in the bound parameters)."""
        nu = torch.exp(self.log_nu)
        tau = 1.0 + torch.exp(self.log_tau_minus_one)
        return nu / tau, nu

    def bounds(self) -> Tuple[float, float]:
        """(mu, nu) currently guaranteed for g: ``mu ||dx|| <= ||dg|| <= nu ||dx||``."""
        mu, nu = self._bound_tensors()
        return float(mu.detach()), float(nu.detach())

    def _layer_bounds(self) -> Tuple[Tensor, Tensor]:
        """Per-monotone-layer (mu_i, gamma_i = nu_i - mu_i)."""
        mu, nu = self._bound_tensors()
        mu_i = mu ** (1.0 / self.depth)
        nu_i = nu ** (1.0 / self.depth)
        return mu_i, nu_i - mu_i

    # ---------------------------------------------------------------------------- weights
    def _weights(self) -> list:
        mu_i, gamma_i = self._layer_bounds()
        ws: list = [orth.weights() for orth in self.orthogonal]
        ws += [mono.weights(mu_i, gamma_i) for mono in self.monotone]
        return ws

    def _current_weights(self) -> list:
        return self._frozen if self._frozen is not None else self._weights()

    @contextlib.contextmanager
    def frozen(self) -> Iterator["BiLipNet"]:
        """Compute the derived weights once (detached) and reuse them inside the block.

        Inside, forward passes skip the Cayley solves (the dominant cost at large D). Gradients
        flow to the inputs and to the biases (and c), but NOT to the matrix parameters or the
        bounds. Use it for inner descent loops that only need ``grad_x f``; do not change
        parameters inside (the cached matrices would go stale).
        """
        with torch.no_grad():
            ws = self._weights()
        previous = self._frozen
        self._frozen = ws
        try:
            yield self
        finally:
            self._frozen = previous

    def _check_input(self, x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"BiLipNet.{name}: expected a torch.Tensor [B, {self.dim}], got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"BiLipNet.{name}: expected shape [B, {self.dim}], got {tuple(x.shape)}; "
                "add a batch dimension with x.unsqueeze(0) for a single point"
            )
        if x.dtype != self.config.dtype:
            raise TypeError(
                f"BiLipNet.{name}: input dtype {x.dtype} != model dtype {self.config.dtype}; "
                f"convert with x.to({self.config.dtype}) or build the model with PLNetConfig(dtype=...)"
            )

    # ---------------------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """g(x): [B, D] -> [B, D]."""
        self._check_input(x, "forward")
        ws = self._current_weights()
        n_orth = len(self.orthogonal)
        h = self.orthogonal[0].apply_weights(x, ws[0])
        for i in range(self.depth):
            h = self.monotone[i].apply_weights(h, ws[n_orth + i])
            h = self.orthogonal[i + 1].apply_weights(h, ws[i + 1])
        return h

    def inverse(
        self,
        y: Tensor,
        *,
        tol: Optional[float] = None,
        max_iter: int = 1000,
        x0: Optional[Tensor] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """g^{-1}(y): [B, D] -> [B, D], detached.

        Orthogonal layers invert exactly; each monotone layer by Davis-Yin splitting, to a
        per-layer tolerance ``tol / (depth * nu)`` so that errors propagated through the later
        layers stay below ``tol``. The final residual ``max_b ||g(x_b) - y_b||`` is checked.

        Args:
            y: Targets [B, D].
            tol: Absolute tolerance: every row must satisfy
                ``||g(x_b) - y_b|| <= tol + rtol max(||x_b||, ||y_b||)``. None: the dtype
                defaults of ``default_inverse_tol`` (float64: 1e-6 absolute; float32: 1e-4 plus
                1e-5 relative, since float32 rounding cannot reach 1e-6).
            max_iter: Iteration cap per monotone layer.
            x0: Optional warm start [B, D], e.g. the previous solution after a small parameter
                update; cuts the iterations when it is close. ``last_inverse_iterations`` tells
                how many each layer used.
            rtol: Relative allowance (see tol); None: 0 when tol is given, else the dtype default.

        Returns:
            x [B, D] with ``||g(x_b) - y_b|| <= tol + rtol max(||x_b||, ||y_b||)`` for every row.

        Raises:
            PLNetInverseError: if the residual is above ``tol`` (message and ``.residual`` give
                the value reached).
        """
        self._check_input(y, "inverse")
        default_tol, default_rtol = default_inverse_tol(self.config.dtype)
        if rtol is None:
            rtol = default_rtol if tol is None else 0.0
        if tol is None:
            tol = default_tol
        if tol < 0 or rtol < 0:
            raise ValueError(f"BiLipNet.inverse: tol and rtol must be >= 0, got tol={tol}, rtol={rtol}")
        if max_iter < 1:
            raise ValueError(f"BiLipNet.inverse: max_iter must be >= 1, got {max_iter}")
        with torch.no_grad():
            ws = self._weights() if self._frozen is None else self._frozen
            _, nu = self.bounds()
            layer_tol = tol / (self.depth * max(nu, 1.0))
            layer_rtol = rtol / self.depth
            n_orth = len(self.orthogonal)
            guesses: List[Optional[Tensor]] = [None] * self.depth
            if x0 is not None:
                self._check_input(x0, "inverse(x0=...)")
                if x0.shape != y.shape:
                    raise ValueError(f"BiLipNet.inverse: x0 shape {tuple(x0.shape)} != y shape {tuple(y.shape)}")
                h0 = self.orthogonal[0].apply_weights(x0.detach(), ws[0])
                for i in range(self.depth):
                    guesses[i] = h0
                    h0 = self.monotone[i].apply_weights(h0, ws[n_orth + i])
                    h0 = self.orthogonal[i + 1].apply_weights(h0, ws[i + 1])
            h = y.detach()
            iterations = [0] * self.depth
            for i in range(self.depth - 1, -1, -1):
                h = self.orthogonal[i + 1].inverse_weights(h, ws[i + 1])
                h, _, iterations[i] = self.monotone[i].inverse_weights(
                    h, ws[n_orth + i], tol=layer_tol, rtol=layer_rtol, max_iter=max_iter, x0=guesses[i]
                )
            self.last_inverse_iterations = iterations
            total_iter = sum(iterations)
            x = self.orthogonal[0].inverse_weights(h, ws[0])
            residual, ok = _row_residual(self.forward(x), y, x, tol, rtol)
        if not ok:
            allowed = f"tol = {tol:.1e}" + (f" + rtol = {rtol:.1e} x max(|x|, |y|)" if rtol > 0 else "")
            raise PLNetInverseError(
                f"BiLipNet.inverse did not converge: max residual ||g(x) - y|| = {residual:.3e} > {allowed} "
                f"after {total_iter} Davis-Yin iterations over {self.depth} monotone layers "
                f"(max_iter={max_iter} per layer, dtype={self.config.dtype}); raise max_iter or loosen tol",
                residual=residual,
                tol=tol,
                iterations=total_iter,
            )
        return x
