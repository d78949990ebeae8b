"""Neural reparametrisation: descend in the slow modes of the Hessian, or through a graph network built on them.

The method of Dehmamy et al. ("Neural Network Reparametrization for
Accelerated Optimization in Molecular Simulations", NeurIPS 2024): instead of
the coordinates ``X [N, 3]``, optimise latent variables ``Z`` of a map
``X = X(Z)`` that moves many atoms together.

* **Slow modes** (:func:`slow_modes`): the ``k`` eigenvectors of the Hessian at
  the start with the lowest eigenvalues, the rigid-body motions (three
  translations, three rotations; fewer for a linear or one-atom system)
  excluded. No dense Hessian is formed: Hessian-vector products come from
  autograd for torch oracles (:class:`~openmm_actionmin.oracles.base.TorchOracle`,
  double backward through ``energy_fn``) and from central differences of forces
  for every other backend (OpenMM, ASE), two batched oracle rows per product.
  The eigensolver is SciPy's LOBPCG (block products, the rigid modes passed as
  constraints) or ARPACK's Lanczos ``eigsh`` (the rigid modes shifted above the
  spectrum). A dense solver exists as a reference for small systems.
* **Linear form** (``form="linear"``): ``X = X0 + Z^T Psi`` with ``Psi [k, 3N]``
  the orthonormal slow modes and ``Z [k]`` starting at zero.
* **Graph-network form** (``form="gnn"``): per-atom latent features
  ``Z [N, h]`` pass through ``depth`` graph convolutions
  ``H <- tanh(A H W + b)`` and a linear read-out ``A H W_out`` to a
  displacement ``[N, 3]``. The adjacency is ``A_ij = |sum_{m, c} Psi[m, i, c]
  Psi[m, j, c]|`` (atoms that move together in the slow modes are linked),
  normalised symmetrically by its degrees. ``X = X0 + G(Z, W) - G(Z_0, W_0)``,
  so the network returns ``X0`` exactly at initialisation; ``init_scale`` sets
  the size of the read-out weights. Both ``Z`` and the weights are trained.
* **Cartesian form** (``form="cartesian"``): ``X = X0 + Z``, plain Adam on the
  coordinates (the paper's gradient-descent baseline).

A run (:func:`reparam_search`): the slow modes of every start, Adam on the
latent variables of all starts at once (each start has its own ``Z`` and
weights; energies of the batch are one oracle call) with early stopping when no
start has improved for ``patience`` steps, optionally fresh modes every
``refresh_every`` steps, then a polish of the best configuration of every start
on ``X``: the batched L-BFGS of :mod:`.local` (clusters) or OpenMM's
LocalEnergyMinimizer (peptides). The wall-clock budget covers all of it: the
modes may use ``modes_fraction`` of it (a solver that runs out falls back to the
polish alone, said in ``extra["modes_timed_out"]``), Adam stops early enough to
leave ``polish_fraction`` for the polish, and the polish stops at the budget.

Force calls: every configuration the oracle evaluates (the Adam steps,
difference products, polish) plus two per autograd Hessian-vector product,
which costs about as much as two gradients.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..oracles.base import EnergyOracle, TorchOracle
from ..result import Result
from ..systems.base import System

#: Latent forms of :class:`ReparamConfig`.
FORMS = ("linear", "gnn", "cartesian")
#: Eigensolvers of :func:`slow_modes` (``"dense"`` builds the full Hessian: a test reference).
SOLVERS = ("lobpcg", "eigsh", "dense")
#: Polishes of :class:`ReparamConfig`.
POLISHES = ("lbfgs", "openmm", "none")


class _OutOfTime(Exception):
    """The eigensolver passed its deadline."""


@dataclasses.dataclass
class ReparamConfig:
    """Settings of :func:`reparam_search` (the options of the registry's ``reparam``).

    Attributes:
        form: ``"gnn"`` (graph network on the slow-mode adjacency),
            ``"linear"`` (``X0 + Z^T Psi``) or ``"cartesian"`` (Adam on ``X``).
        n_modes: Slow modes ``k`` (``None``: ``min(32, (3N - 6) // 2)``); at
            most the non-rigid degrees of freedom ``3N - 6``.
        n_starts: Starts optimised together (random configurations of the
            search space when the system has no start; otherwise the start and
            copies of it displaced by ``start_noise``).
        start_noise: Gaussian displacement of the extra copies of a given
            start, length units.
        lr: Adam learning rate (length units for the linear and Cartesian forms).
        max_steps: Adam steps at most.
        patience: Adam stops when no start has improved its best energy by
            more than ``min_improvement`` (relative, at least 1e-12 absolute)
            for this many steps.
        min_improvement: Relative improvement that resets the patience.
        refresh_every: Recompute the modes at the current configurations every
            this many Adam steps (0: never).
        depth: Graph-convolution layers of the GNN form.
        hidden: Width of the GNN's node features.
        init_scale: Standard deviation of the GNN's read-out weights (length
            units): the size of the displacements its first steps make.
        hessian: ``"auto"`` (autograd for torch oracles, else differences),
            ``"autograd"`` or ``"fd"``.
        fd_step: Step of the force differences, length units.
        solver: ``"lobpcg"``, ``"eigsh"`` or ``"dense"`` (small systems only).
        eig_tol: Tolerance of the eigensolver.
        eig_maxiter: Iterations of the eigensolver at most.
        modes_fraction: Share of the budget the modes may take.
        shared_modes: Compute the modes once, at the first start, and use them
            for every start. ``None`` (the default) shares them when the starts
            are copies of the system's one start (displaced by ``start_noise``),
            and computes them per start for random starts or ``starts`` given.
        polish: ``"lbfgs"`` (batched L-BFGS on ``X``), ``"openmm"``
            (LocalEnergyMinimizer; peptides) or ``"none"``.
        polish_fraction: Share of the budget kept for the polish.
        polish_fmax: Force threshold of the L-BFGS polish (oracle units).
        polish_steps: L-BFGS iterations of the polish at most.
        polish_max_step: Largest atom move of an L-BFGS polish step.
        record_every: Adam steps between history rows.
        seed: Seed of the starts, the GNN's weights and the eigensolver.
        budget_s: Wall-clock budget, seconds (``None``: bounded by
            ``max_steps`` and ``polish_steps`` only).
        progress: Unused (no bar); accepted for the registry.
        method_name: Name put in the result.
    """

    form: str = "gnn"
    n_modes: Optional[int] = None
    n_starts: int = 4
    start_noise: float = 0.05
    lr: float = 1e-2
    max_steps: int = 5000
    patience: int = 200
    min_improvement: float = 1e-6
    refresh_every: int = 0
    depth: int = 2
    hidden: int = 16
    init_scale: float = 0.1
    hessian: str = "auto"
    fd_step: float = 1e-3
    solver: str = "lobpcg"
    eig_tol: float = 1e-3
    eig_maxiter: int = 100
    modes_fraction: float = 0.3
    shared_modes: Optional[bool] = None
    polish: str = "lbfgs"
    polish_fraction: float = 0.25
    polish_fmax: float = 1e-3
    polish_steps: int = 2000
    polish_max_step: float = 0.2
    record_every: int = 10
    seed: int = 0
    budget_s: Optional[float] = 60.0
    progress: bool = False
    method_name: str = "reparam"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("form", FORMS),
            ("solver", SOLVERS),
            ("polish", POLISHES),
            ("hessian", ("auto", "autograd", "fd")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"reparam {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.n_modes is not None and (int(self.n_modes) != self.n_modes or self.n_modes < 1):
            raise ValueError(f"reparam n_modes must be a positive whole number, got {self.n_modes!r}")
        for name in (
            "n_starts",
            "max_steps",
            "patience",
            "depth",
            "hidden",
            "eig_maxiter",
            "polish_steps",
            "record_every",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"reparam {name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("lr", "init_scale", "fd_step", "eig_tol", "polish_fmax", "polish_max_step"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"reparam {name} must be positive and finite, got {value!r}")
        for name in ("modes_fraction", "polish_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"reparam {name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.refresh_every < 0 or self.start_noise < 0 or self.min_improvement < 0:
            raise ValueError("reparam refresh_every, start_noise and min_improvement must be >= 0")
        if self.budget_s is not None and not (self.budget_s > 0 and math.isfinite(self.budget_s)):
            raise ValueError(f"reparam budget_s must be positive seconds or None, got {self.budget_s!r}")


@dataclasses.dataclass
class PeptideReparamConfig(ReparamConfig):
    """:class:`ReparamConfig` for OpenMM peptides (nm, kJ/mol): the OpenMM polish and its settings.

    Its defaults differ where a peptide needs it: 16 modes and 30 LOBPCG
    iterations (every difference product is two OpenMM evaluations), one
    start, steps in nm, and OpenMM's LocalEnergyMinimizer as the polish.

    Attributes:
        platform: OpenMM platform of the polish (None: the oracle's).
        threads: CPU threads of the polish's Context.
        tolerance_kj_mol_nm: Tolerance of the polish (RMS force, kJ/mol/nm).
        rmsd: Optional CA-RMSD scorer (``openmm_actionmin.proteins.CARMSD``);
            adds ``ca_rmsd_A`` to the result's ``extra``.
    """

    n_modes: Optional[int] = 16
    eig_maxiter: int = 30
    n_starts: int = 1
    start_noise: float = 0.01
    lr: float = 2e-3
    patience: int = 100
    init_scale: float = 0.01
    polish: str = "openmm"
    polish_max_step: float = 0.01
    platform: Optional[str] = None
    threads: Optional[int] = None
    tolerance_kj_mol_nm: float = 1.0
    rmsd: Any = None


# ---------------------------------------------------------------- Hessian
def rigid_basis(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal rigid-body motions of ``x [N, 3]`` as columns ``[3N, r]``.

    Translations along x, y, z and rotations about the centroid; ``r`` is their
    rank (6, 5 for collinear atoms, 3 for one atom).
    """
    x = x.detach().to(torch.float64).reshape(-1, 3)
    n = x.shape[0]
    c = x - x.mean(0)
    cols = []
    for a in range(3):
        t = torch.zeros(n, 3, dtype=torch.float64, device=x.device)
        t[:, a] = 1.0
        cols.append(t.reshape(-1))
    for a in range(3):
        axis = torch.zeros(3, dtype=torch.float64, device=x.device)
        axis[a] = 1.0
        cols.append(torch.linalg.cross(axis.expand_as(c), c).reshape(-1))
    m = torch.stack(cols, dim=1)
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    rank = int((s > 1e-8 * s.max()).sum())
    return u[:, :rank]


class HessianProducts:
    """Hessian-vector products of an oracle's raw energy at one configuration.

    Args:
        oracle: An atomic oracle.
        x0: The configuration ``[N, 3]``.
        method: ``"auto"``, ``"autograd"`` (torch oracles) or ``"fd"``.
        fd_step: Step of the central force differences, length units.
        deadline: ``time.perf_counter()`` after which a product raises.

    Attributes:
        force_calls: Configurations evaluated for the products (two per
            product either way; autograd products are counted as two).
    """

    def __init__(
        self,
        oracle: EnergyOracle,
        x0: torch.Tensor,
        method: str = "auto",
        fd_step: float = 1e-3,
        deadline: Optional[float] = None,
    ) -> None:
        if method == "auto":
            method = "autograd" if isinstance(oracle, TorchOracle) else "fd"
        if method == "autograd" and not isinstance(oracle, TorchOracle):
            raise ValueError(
                f"autograd Hessian products need a torch oracle, not {type(oracle).__name__}; use hessian='fd'"
            )
        self.oracle = oracle
        self.method = method
        self.fd_step = float(fd_step)
        self.deadline = deadline
        self.x0 = x0.detach().to(device=oracle.device, dtype=torch.float64).reshape(-1)
        self.dim = self.x0.numel()
        self.force_calls = 0

    def _check_time(self) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OutOfTime()

    def __call__(self, v: np.ndarray) -> np.ndarray:
        """``H v`` for columns ``v [3N, m]`` (numpy, float64)."""
        self._check_time()
        vt = torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float64, device=self.x0.device)
        if vt.dim() == 1:
            return self(v[:, None])[:, 0]
        out = self._autograd(vt) if self.method == "autograd" else self._fd(vt)
        if not bool(torch.isfinite(out).all()):
            raise ValueError(
                "a Hessian-vector product is not finite: the configuration has overlapping atoms "
                "or is outside the oracle's domain"
            )
        return out.cpu().numpy()

    def _autograd(self, v: torch.Tensor) -> torch.Tensor:
        # a batch of copies of x0, one per column: one double backward gives every product;
        # chunks keep the batch's pair arrays near 2e7 entries
        n = self.dim // 3
        chunk = max(1, int(2e7 // (n * n)))
        cols = []
        for lo in range(0, v.shape[1], chunk):
            vc = v[:, lo : lo + chunk].T  # [m, D]
            xb = self.x0.expand(vc.shape[0], -1).clone().requires_grad_(True)
            with torch.enable_grad():
                e = self.oracle.energy_fn(xb.reshape(vc.shape[0], n, 3).to(self.oracle.dtype)).sum()
                (g,) = torch.autograd.grad(e, xb, create_graph=True)
                (hv,) = torch.autograd.grad((g.to(torch.float64) * vc).sum(), xb)
            cols.append(hv.detach().to(torch.float64))
        self.force_calls += 2 * v.shape[1]
        return torch.cat(cols, dim=0).T

    def _fd(self, v: torch.Tensor) -> torch.Tensor:
        norms = torch.linalg.vector_norm(v, dim=0)
        safe = torch.where(norms > 0, norms, torch.ones_like(norms))
        u = (v / safe).T  # [m, D]
        h = self.fd_step
        rows = torch.cat([self.x0 + h * u, self.x0 - h * u]).reshape(-1, self.dim // 3, 3)
        _, f = self.oracle.energy_and_forces(rows.to(self.oracle.dtype), transform=None)
        f = f.to(torch.float64).reshape(2, v.shape[1], self.dim)
        self.force_calls += 2 * v.shape[1]
        hv = -(f[0] - f[1]) / (2.0 * h)
        return (hv * norms[:, None]).T


def dense_hessian(products: Callable[[np.ndarray], np.ndarray], dim: int) -> np.ndarray:
    """The full Hessian ``[dim, dim]`` from products with the unit vectors, symmetrised (test reference)."""
    h = products(np.eye(dim))
    return 0.5 * (h + h.T)


def _check_k(k: int, dim: int, rank: int, name: str = "the system") -> None:
    free = dim - rank
    if not 1 <= k <= free:
        raise ValueError(
            f"n_modes={k} is outside 1..{free}: {name} has {dim // 3} atoms, so 3N - {rank} = {free} "
            "non-rigid degrees of freedom; ask for fewer modes"
        )


def slow_modes(
    products: Callable[[np.ndarray], np.ndarray],
    x0: torch.Tensor,
    k: int,
    *,
    solver: str = "lobpcg",
    tol: float = 1e-3,
    maxiter: int = 100,
    seed: int = 0,
    name: str = "the system",
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` lowest non-rigid eigenpairs of the Hessian.

    Args:
        products: ``v [3N, m] -> H v [3N, m]`` (e.g. :class:`HessianProducts`).
        x0: The configuration ``[N, 3]`` (for its rigid-body motions).
        k: Number of modes (at most ``3N`` minus the rigid motions).
        solver: ``"lobpcg"`` (rigid motions as constraints; below
            ``5 k`` free coordinates, LOBPCG's own limit, the dense solver),
            ``"eigsh"`` (rigid motions shifted above the spectrum) or
            ``"dense"`` (all ``3N`` products and a dense eigendecomposition in
            the complement of the rigid motions; small systems, tests).
        tol: Solver tolerance.
        maxiter: Solver iterations at most.
        seed: Seed of the initial block.
        name: The system's name, for the error message.

    Returns:
        ``(eigenvalues [k], modes [k, 3N])``: ascending eigenvalues, modes
        orthonormal and orthogonal to every rigid-body motion.

    Raises:
        ValueError: ``k`` larger than the non-rigid degrees of freedom, or an
            unknown solver.
    """
    import scipy.linalg
    import scipy.sparse.linalg as spla

    R = rigid_basis(x0).cpu().numpy()
    dim, rank = R.shape
    _check_k(int(k), dim, rank, name)
    if solver not in SOLVERS:
        raise ValueError(f"unknown eigensolver {solver!r}; choose one of {', '.join(SOLVERS)}")

    def project(v: np.ndarray) -> np.ndarray:
        return v - R @ (R.T @ v)

    def php(v: np.ndarray) -> np.ndarray:
        return project(products(project(v)))

    rng = np.random.default_rng(int(seed))
    if solver == "lobpcg" and dim - rank < 5 * k:
        solver = "dense"  # LOBPCG's own rule: too small for a block of k; its dense fallback takes no constraints
    if solver == "dense":
        q = np.linalg.qr(R, mode="complete")[0][:, rank:]
        h = dense_hessian(products, dim)
        w, u = np.linalg.eigh(q.T @ h @ q)
        vals, vecs = w[:k], q @ u[:, :k]
    elif solver == "lobpcg":
        op = spla.LinearOperator((dim, dim), matvec=lambda v: php(v.reshape(-1, 1))[:, 0], matmat=php, dtype=np.float64)
        block = project(rng.standard_normal((dim, k)))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UserWarning
            )  # "not reaching the requested tolerance": the iterate is used as is
            vals, vecs = spla.lobpcg(op, block, Y=R, largest=False, tol=tol, maxiter=int(maxiter))
    else:
        # power iterations bound the spectrum; the rigid motions are lifted above it
        v = project(rng.standard_normal((dim, 1)))
        lam = 1.0
        for _ in range(8):
            w = php(v / np.linalg.norm(v))
            lam = float(np.linalg.norm(w))
            v = w if lam > 0 else project(rng.standard_normal((dim, 1)))
        shift = 3.0 * max(lam, 1e-6)
        op = spla.LinearOperator(
            (dim, dim),
            dtype=np.float64,
            matvec=lambda v: php(v.reshape(-1, 1))[:, 0] + shift * (R @ (R.T @ v.reshape(-1))),
            matmat=lambda v: php(v) + shift * (R @ (R.T @ v)),
        )
        v0 = project(rng.standard_normal((dim, 1)))[:, 0]
        ncv = min(dim, max(2 * k + 1, 20))
        try:
            vals, vecs = spla.eigsh(op, k=int(k), which="SA", v0=v0, tol=tol, ncv=ncv, maxiter=int(maxiter) * dim)
        except spla.ArpackNoConvergence as exc:
            if exc.eigenvalues is None or len(exc.eigenvalues) < k:
                raise ValueError(
                    f"eigsh found {0 if exc.eigenvalues is None else len(exc.eigenvalues)} of {k} modes; "
                    "raise eig_maxiter or use solver='lobpcg'"
                ) from None
            vals, vecs = exc.eigenvalues, exc.eigenvectors
    order = np.argsort(vals)[:k]
    vals, vecs = np.asarray(vals)[order], project(np.asarray(vecs)[:, order])
    vecs = scipy.linalg.orth(vecs) if vecs.shape[1] > 0 else vecs
    if vecs.shape[1] < k:  # degenerate output: completed by a random orthogonal direction
        extra = project(rng.standard_normal((dim, k - vecs.shape[1])))
        vecs = scipy.linalg.orth(np.concatenate([vecs, extra - vecs @ (vecs.T @ extra)], axis=1))
    # Rayleigh-Ritz in the orthonormalised span, so values and vectors agree
    t = vecs.T @ php(vecs)
    ritz, rot = np.linalg.eigh(0.5 * (t + t.T))
    return ritz, (vecs @ rot).T.copy()


# --------------------------------------------------------- reparametrisations
class LinearReparam(torch.nn.Module):
    """``X = X0 + Z^T Psi`` for a batch of starts.

    Args:
        x0: Starts ``[B, N, 3]``.
        modes: Orthonormal modes ``[B, k, 3N]``.
    """

    def __init__(self, x0: torch.Tensor, modes: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x0", x0.detach().clone())
        self.register_buffer("modes", modes.detach().clone())
        self.z = torch.nn.Parameter(torch.zeros(modes.shape[:2], dtype=x0.dtype, device=x0.device))

    def forward(self) -> torch.Tensor:
        """Configurations ``[B, N, 3]``."""
        return self.x0 + torch.einsum("bk,bkd->bd", self.z, self.modes).reshape(self.x0.shape)


class CartesianReparam(torch.nn.Module):
    """``X = X0 + Z``: the coordinates themselves (Adam on ``X``)."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x0", x0.detach().clone())
        self.z = torch.nn.Parameter(torch.zeros_like(x0))

    def forward(self) -> torch.Tensor:
        """Configurations ``[B, N, 3]``."""
        return self.x0 + self.z


def mode_adjacency(modes: torch.Tensor) -> torch.Tensor:
    """Normalised atom adjacency ``D^-1/2 |Psi^T Psi| D^-1/2`` of modes ``[B, k, 3N]`` -> ``[B, N, N]``."""
    b, k, d = modes.shape
    psi = modes.reshape(b, k, d // 3, 3)
    a = torch.einsum("bmic,bmjc->bij", psi, psi).abs()
    deg = a.sum(-1).clamp_min(1e-12).rsqrt()
    return deg[:, :, None] * a * deg[:, None, :]


class GNNReparam(torch.nn.Module):
    """``X = X0 + G(Z, W) - G(Z_0, W_0)``: graph convolutions on the slow-mode adjacency.

    ``G``: ``H_0 = Z [N, h]``, ``H_{l+1} = tanh(A H_l W_l + b_l)`` for ``depth``
    layers, read-out ``A H W_out [N, 3]``. Each start has its own ``Z`` and
    weights. At initialisation the output is ``X0`` exactly.

    Args:
        x0: Starts ``[B, N, 3]``.
        modes: Orthonormal modes ``[B, k, 3N]`` (their adjacency is the graph).
        depth: Graph-convolution layers.
        hidden: Node feature width ``h``.
        init_scale: Standard deviation of the read-out weights.
        generator: Torch generator of the initial values.
    """

    def __init__(
        self,
        x0: torch.Tensor,
        modes: torch.Tensor,
        depth: int = 2,
        hidden: int = 16,
        init_scale: float = 0.1,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        b, n, _ = x0.shape
        dt, dev = x0.dtype, x0.device

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype=dt, device=dev)

        self.register_buffer("x0", x0.detach().clone())
        self.register_buffer("adjacency", mode_adjacency(modes.to(dt)))
        self.z = torch.nn.Parameter(randn(b, n, hidden))
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(randn(b, hidden, hidden) / math.sqrt(hidden)) for _ in range(depth)]
        )
        self.biases = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(b, 1, hidden, dtype=dt, device=dev)) for _ in range(depth)]
        )
        self.readout = torch.nn.Parameter(randn(b, hidden, 3) * (init_scale / math.sqrt(hidden)))
        with torch.no_grad():
            self.register_buffer("offset", self.network().detach().clone())

    def network(self) -> torch.Tensor:
        """``G(Z, W)`` ``[B, N, 3]``."""
        h = self.z
        for w, bias in zip(self.weights, self.biases):
            h = torch.tanh(torch.bmm(self.adjacency, torch.bmm(h, w)) + bias)
        return torch.bmm(self.adjacency, torch.bmm(h, self.readout))

    def forward(self) -> torch.Tensor:
        """Configurations ``[B, N, 3]``."""
        return self.x0 + (self.network() - self.offset)


def build_reparam(
    form: str,
    x0: torch.Tensor,
    modes: Optional[torch.Tensor],
    config: ReparamConfig,
    generator: Optional[torch.Generator] = None,
) -> torch.nn.Module:
    """The module of ``form`` at starts ``x0 [B, N, 3]`` (``modes [B, k, 3N]`` for linear and GNN)."""
    if form == "cartesian":
        return CartesianReparam(x0)
    if modes is None:
        raise ValueError(f"the {form} form needs slow modes")
    if form == "linear":
        return LinearReparam(x0, modes.to(x0.dtype))
    return GNNReparam(
        x0, modes, depth=config.depth, hidden=config.hidden, init_scale=config.init_scale, generator=generator
    )


# ------------------------------------------------------------------ search
def default_n_modes(n_atoms: int) -> int:
    """``min(32, (3N - 6) // 2)``, at least 1."""
    return max(1, min(32, (3 * n_atoms - 6) // 2))


def _starts(system: System, config: ReparamConfig, generator: torch.Generator) -> torch.Tensor:
    oracle = system.oracle
    b = int(config.n_starts)
    if system.start_positions is not None:
        x = system.start_positions.detach().to(device=oracle.device, dtype=torch.float64)[None].repeat(b, 1, 1)
        if b > 1:
            noise = torch.randn(x[1:].shape, generator=generator, dtype=torch.float64).to(x.device)
            x[1:] += config.start_noise * noise
        return x
    z = system.space.sample(b, generator)
    return system.space.to_config(z).detach().to(device=oracle.device, dtype=torch.float64)


def reparam_search(
    system: System,
    config: Optional[ReparamConfig] = None,
    *,
    starts: Optional[torch.Tensor] = None,
) -> Result:
    """Minimise an atomic system by Adam on a reparametrisation, then polish on ``X``.

    Args:
        system: An atomic system (cluster, loop chain or OpenMM peptide).
        config: :class:`ReparamConfig` (:class:`PeptideReparamConfig` for an
            OpenMM polish).
        starts: Start configurations ``[B, N, 3]`` (default: from
            ``config.n_starts`` and the system, see :class:`ReparamConfig`).

    Returns:
        A :class:`Result` with the lowest polished configuration; ``history``
        rows (``wall_s``, ``energy`` (lowest of the step), ``best_energy``,
        ``force_calls``, ``phase``: ``modes``, ``adam``, ``polish``); ``extra``
        with ``form``, ``n_modes``, ``eigenvalues`` (per start), ``modes_s``,
        ``adam_steps``, ``adam_stop`` (``"early"``, ``"max_steps"``,
        ``"budget"``), ``before_polish_energy``, ``start_energy`` and
        ``hessian_calls``.

    Raises:
        ValueError: a non-atomic system, too many modes, or starts of the
            wrong shape.
    """
    cfg = config if config is not None else ReparamConfig()
    t0 = time.perf_counter()
    if not system.is_atomic:
        raise ValueError(
            f"reparam needs an atomic system (atoms [N, 3]); {system.name!r} is a function of "
            f"{system.oracle.dim} variables"
        )
    oracle = system.oracle
    n = int(oracle.n_atoms)
    budget = cfg.budget_s
    deadline = math.inf if budget is None else t0 + float(budget)
    k = int(cfg.n_modes) if cfg.n_modes is not None else default_n_modes(n)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    x = _starts(system, cfg, gen) if starts is None else oracle.as_batch(starts).detach().to(torch.float64)
    shared = (
        cfg.shared_modes if cfg.shared_modes is not None else (starts is None and system.start_positions is not None)
    )
    if tuple(x.shape[1:]) != (n, 3):
        raise ValueError(f"reparam starts must be [B, {n}, 3], got {tuple(x.shape)}")
    if cfg.form != "cartesian":
        _check_k(k, 3 * n, rigid_basis(x[0]).shape[1], system.name)
    calls0 = oracle.counters.force_calls
    hessian_calls = 0
    history: List[Dict[str, Any]] = []

    def force_calls() -> int:
        return oracle.counters.force_calls - calls0 + hessian_calls

    e_start = oracle.energy(x.to(oracle.dtype), transform=None).to(torch.float64)
    best_e = e_start.clone()
    best_x = x.clone()
    history.append(
        {
            "wall_s": time.perf_counter() - t0,
            "energy": float(e_start.min()),
            "best_energy": float(e_start.min()),
            "force_calls": force_calls(),
            "phase": "start",
        }
    )

    # ------------------------------------------------------------ modes
    eigenvalues: List[List[float]] = []
    modes_s = 0.0
    timed_out = False
    adam_end = deadline if budget is None else deadline - cfg.polish_fraction * float(budget)
    if cfg.polish == "none":
        adam_end = deadline

    def compute_modes(at: torch.Tensor, share_end: float) -> Optional[torch.Tensor]:
        nonlocal hessian_calls, modes_s
        t = time.perf_counter()
        out = []
        vals = []
        try:
            for b in range(1 if shared else at.shape[0]):
                prod = HessianProducts(oracle, at[b], cfg.hessian, cfg.fd_step, deadline=share_end)
                try:
                    w, psi = slow_modes(
                        prod,
                        at[b],
                        k,
                        solver=cfg.solver,
                        tol=cfg.eig_tol,
                        maxiter=cfg.eig_maxiter,
                        seed=cfg.seed + b,
                        name=system.name,
                    )
                finally:
                    if prod.method == "autograd":
                        hessian_calls += prod.force_calls
                out.append(torch.as_tensor(psi, dtype=torch.float64, device=at.device))
                vals.append([float(v) for v in w])
        except _OutOfTime:
            return None
        finally:
            modes_s += time.perf_counter() - t
        eigenvalues.extend(vals)
        if shared:
            return torch.stack(out).expand(at.shape[0], *out[0].shape).clone()
        return torch.stack(out)

    modes = None
    if cfg.form != "cartesian":
        share = math.inf if budget is None else t0 + cfg.modes_fraction * float(budget)
        modes = compute_modes(x, min(share, adam_end))
        timed_out = modes is None
        history.append(
            {
                "wall_s": time.perf_counter() - t0,
                "energy": float(best_e.min()),
                "best_energy": float(best_e.min()),
                "force_calls": force_calls(),
                "phase": "modes",
            }
        )

    # ------------------------------------------------------------- Adam
    steps = 0
    stop = "budget"
    if not timed_out:
        stop, steps = _adam(
            system, cfg, x, modes, gen, t0, adam_end, history, best_e, best_x, force_calls, compute_modes
        )
    adam_best = float(best_e.min())

    # ------------------------------------------------------------ polish
    energy, positions, polish_extra = _polish(system, cfg, best_x, best_e, deadline)
    if cfg.polish != "none":
        history.append(
            {
                "wall_s": time.perf_counter() - t0,
                "energy": energy,
                "best_energy": min(energy, float(best_e.min())),
                "force_calls": force_calls() + polish_extra.pop("openmm_calls", 0),
                "phase": "polish",
            }
        )
    calls = history[-1]["force_calls"] if cfg.polish != "none" else force_calls()
    extra: Dict[str, Any] = {
        "form": cfg.form,
        "n_modes": k if cfg.form != "cartesian" else 0,
        "n_starts": int(x.shape[0]),
        "eigenvalues": eigenvalues,
        "modes_s": modes_s,
        "modes_timed_out": timed_out,
        "adam_steps": steps,
        "adam_stop": stop,
        "before_polish_energy": adam_best,
        "start_energy": float(e_start.min()),
        "hessian_calls": hessian_calls,
        "config": {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "rmsd"},
        **polish_extra,
    }
    rmsd = getattr(cfg, "rmsd", None)
    if rmsd is not None:
        extra["ca_rmsd_A"] = float(rmsd(positions))
    units = oracle.units
    return Result(
        positions=positions.detach().cpu().numpy(),
        energy=float(energy),
        units=units,
        method=cfg.method_name,
        seed=int(cfg.seed),
        force_calls=int(calls),
        wall_s=time.perf_counter() - t0,
        history=history,
        system=system.name,
        symbols=system.symbols,
        topology=system.topology,
        extra=extra,
    )


def _adam(
    system: System,
    cfg: ReparamConfig,
    x: torch.Tensor,
    modes: Optional[torch.Tensor],
    gen: torch.Generator,
    t0: float,
    end: float,
    history: List[Dict[str, Any]],
    best_e: torch.Tensor,
    best_x: torch.Tensor,
    force_calls: Callable[[], int],
    refresh: Callable[[torch.Tensor, float], Optional[torch.Tensor]],
) -> Tuple[str, int]:
    """Adam on the latent variables of every start; updates ``best_e``/``best_x`` in place.

    Returns:
        Why it stopped (``"budget"``, ``"max_steps"``, ``"early"``) and the steps made.
    """
    oracle = system.oracle
    model = build_reparam(cfg.form, x, modes, cfg, gen)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    stall = torch.zeros(x.shape[0], dtype=torch.long, device=best_e.device)
    step = 0
    while True:
        if time.perf_counter() >= end:
            return "budget", step
        if step >= cfg.max_steps:
            return "max_steps", step
        if bool((stall >= cfg.patience).all()):
            return "early", step
        if cfg.refresh_every and step > 0 and step % cfg.refresh_every == 0 and cfg.form != "cartesian":
            at = model().detach()
            fresh = refresh(at, end)
            if fresh is None:
                return "budget", step
            model = build_reparam(cfg.form, at, fresh, cfg, gen)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        xs = model()
        e = oracle.energy(xs.to(oracle.dtype), transform=None).to(torch.float64)
        opt.zero_grad()
        e.sum().backward()
        opt.step()
        step += 1
        ed = e.detach().to(best_e.device)
        better = ed < best_e - torch.clamp(cfg.min_improvement * best_e.abs(), min=1e-12)
        stall = torch.where(better, torch.zeros_like(stall), stall + 1)
        lower = ed < best_e
        best_e[lower] = ed[lower]
        best_x[lower] = xs.detach().to(device=best_x.device, dtype=torch.float64)[lower]
        if step % cfg.record_every == 0:
            history.append(
                {
                    "wall_s": time.perf_counter() - t0,
                    "energy": float(ed.min()),
                    "best_energy": float(best_e.min()),
                    "force_calls": force_calls(),
                    "phase": "adam",
                    "step": step,
                }
            )


def _polish(
    system: System, cfg: ReparamConfig, best_x: torch.Tensor, best_e: torch.Tensor, deadline: float
) -> Tuple[float, torch.Tensor, Dict[str, Any]]:
    """Polish the best configuration of every start; the lowest result."""
    oracle = system.oracle
    i = int(torch.argmin(best_e))
    if cfg.polish == "none" or time.perf_counter() >= deadline:
        return float(best_e[i]), best_x[i], {}
    if cfg.polish == "lbfgs":
        from .local import BatchLBFGS

        lb = BatchLBFGS(
            oracle,
            best_x.to(oracle.dtype),
            fmax=cfg.polish_fmax,
            max_steps=cfg.polish_steps,
            max_step=cfg.polish_max_step,
            generator=torch.Generator().manual_seed(int(cfg.seed)),
        )
        res = lb.run(deadline=None if math.isinf(deadline) else deadline)
        e = res.energy.to(best_e.device)
        j = int(torch.argmin(e))
        if float(e[j]) < float(best_e[i]):
            return (
                float(e[j]),
                res.x[j].to(torch.float64),
                {"final_fmax": float(res.fmax[j]), "polish_steps": int(res.steps[j])},
            )
        return float(best_e[i]), best_x[i], {"final_fmax": float(res.fmax[j]), "polish_steps": int(res.steps[j])}
    from .openmm_baselines import openmm_minimize

    if type(oracle).__name__ != "OpenMMOracle":
        raise ValueError(
            f"polish='openmm' needs an OpenMM system; {system.name!r} has a {type(oracle).__name__}; use 'lbfgs'"
        )
    order = torch.argsort(best_e).tolist()
    best: Optional[Result] = None
    calls = 0
    for rank, b in enumerate(order):
        left = deadline - time.perf_counter()
        if rank > 0 and left <= 0:
            break
        res = openmm_minimize(
            system,
            best_x[b].cpu().numpy(),
            tolerance_kj_mol_nm=getattr(cfg, "tolerance_kj_mol_nm", 1.0),
            budget_s=None if math.isinf(left) else max(left, 1e-3),
            platform=getattr(cfg, "platform", None),
            threads=getattr(cfg, "threads", None),
        )
        calls += res.force_calls
        if best is None or res.energy < best.energy:
            best = res
    assert best is not None
    pos = torch.as_tensor(np.asarray(best.positions), dtype=torch.float64)
    if best.energy < float(best_e[i]):
        return float(best.energy), pos, {"final_rms_force": best.extra.get("final_rms_force"), "openmm_calls": calls}
    return float(best_e[i]), best_x[i], {"final_rms_force": best.extra.get("final_rms_force"), "openmm_calls": calls}
