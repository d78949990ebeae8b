"""Tests of the BiLipNet / PLNet model: certified bounds, inverse, unique minimiser, gradients."""

import math

import pytest
import torch

from openmm_actionmin.models.orthogonal import (
    _semi_orthogonal,
    cayley,
    inverse_cayley,
    isotropic_tall_init,
    qr_orthonormal,
)
from openmm_actionmin.models.plnet import PLNet, PLNetConfig, PLNetInverseError, box_penalty

F64 = torch.float64


def _perturbed(config: PLNetConfig, scale: float = 0.5, seed: int = 1) -> PLNet:
    """A PLNet whose parameters are all moved randomly away from their initial values."""
    model = PLNet(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


CASES = [
    ("cayley", 64),
    ("householder", 64),
    ("cayley", (16, 24, 8)),
    ("householder", (12, 12)),
]


@pytest.mark.parametrize("orthogonal,hidden", CASES)
def test_bilipschitz_bounds_hold_for_random_parameters(orthogonal, hidden):
    config = PLNetConfig(dim=7, depth=3, hidden=hidden, orthogonal=orthogonal, householder_reflections=5, seed=3)
    model = _perturbed(config)
    mu, nu = model.g_net.bounds()
    assert 0 < mu < nu
    assert (mu, nu) != pytest.approx((0.1, 2.0))  # the bounds themselves were perturbed too
    gen = torch.Generator().manual_seed(5)
    x1 = 3.0 * torch.randn(2000, 7, generator=gen, dtype=F64)
    # mix of near and far pairs
    step = torch.randn(2000, 7, generator=gen, dtype=F64) * torch.logspace(-3, 1, 2000, dtype=F64).unsqueeze(1)
    x2 = x1 + step
    with torch.no_grad():
        ratio = (model.g(x1) - model.g(x2)).norm(dim=1) / step.norm(dim=1)
    assert float(ratio.min()) >= mu * (1 - 1e-6)
    assert float(ratio.max()) <= nu * (1 + 1e-6)
    # and the network is not trivially tight: it actually bends inside the allowed band
    assert float(ratio.max() - ratio.min()) > 0.05 * (nu - mu)


@pytest.mark.parametrize("hidden", [32, (8, 16, 8)])
def test_monotone_layer_is_strongly_monotone_and_lipschitz(hidden):
    config = PLNetConfig(dim=5, depth=2, hidden=hidden, seed=4)
    model = _perturbed(config, seed=7)
    net = model.g_net
    layer = net.monotone[0]
    with torch.no_grad():
        mu_i, gamma_i = net._layer_bounds()
        w = layer.weights(mu_i, gamma_i)
        gen = torch.Generator().manual_seed(2)
        x1 = 2.0 * torch.randn(3000, 5, generator=gen, dtype=F64)
        x2 = x1 + torch.randn(3000, 5, generator=gen, dtype=F64)
        dx = x1 - x2
        dy = layer.apply_weights(x1, w) - layer.apply_weights(x2, w)
    inner = (dx * dy).sum(1) / (dx * dx).sum(1)
    lip = dy.norm(dim=1) / dx.norm(dim=1)
    assert float(inner.min()) >= float(mu_i) * (1 - 1e-9)
    assert float(lip.max()) <= float(mu_i + gamma_i) * (1 + 1e-9)


def test_cayley_is_orthogonal_for_square_and_tall():
    gen = torch.Generator().manual_seed(0)
    for shape in [(6, 6), (11, 4), (1, 1)]:
        r = cayley(3.0 * torch.randn(*shape, generator=gen, dtype=F64))
        assert r.shape == shape
        assert torch.allclose(r.T @ r, torch.eye(shape[1], dtype=F64), atol=1e-12)
    with pytest.raises(ValueError, match="tall or square"):
        cayley(torch.zeros(2, 3, dtype=F64))


def test_inverse_cayley_recovers_the_orthonormal_matrix():
    r = cayley(isotropic_tall_init(40, 6, torch.Generator().manual_seed(4), F64, "cpu"))  # orthonormal columns
    assert torch.allclose(cayley(inverse_cayley(r)), r, atol=1e-10)
    with pytest.raises(ValueError, match="tall"):
        inverse_cayley(torch.eye(3, dtype=F64))


def test_qr_semi_orthogonal_is_orthonormal_and_row_equivariant():
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(50, 7, generator=gen, dtype=F64)
    q = qr_orthonormal(w)
    assert torch.allclose(q.T @ q, torch.eye(7, dtype=F64), atol=1e-12)
    perm = torch.randperm(50, generator=gen)
    assert torch.allclose(qr_orthonormal(w[perm]), q[perm], atol=1e-10)  # no row is special


@pytest.mark.parametrize("semi", ["cayley", "qr"])
def test_qr_and_cayley_layers_keep_the_certified_bounds_and_inverse(semi):
    config = PLNetConfig(dim=40, hidden=8, depth=2, seed=2, dtype=F64, semi_orthogonal=semi, mu=0.5, nu=1.5)
    model = _perturbed(config, scale=0.3)
    gen = torch.Generator().manual_seed(6)
    x1, x2 = torch.randn(64, 40, generator=gen, dtype=F64), torch.randn(64, 40, generator=gen, dtype=F64)
    with torch.no_grad():
        ratio = (model.bilipnet(x1) - model.bilipnet(x2)).norm(dim=1) / (x1 - x2).norm(dim=1)
    mu, nu = model.bilipnet.bounds()
    assert float(ratio.min()) >= mu - 1e-9 and float(ratio.max()) <= nu + 1e-9
    x_star = model.minimizer()
    with torch.no_grad():
        assert float(model.bilipnet(x_star.reshape(1, -1)).norm()) < 1e-6
    with pytest.raises(ValueError, match="semi_orthogonal"):
        PLNetConfig(dim=4, semi_orthogonal="svd")


@pytest.mark.parametrize("dim,hidden", [(1000, 32), (100, 32), (200, 16)])
def test_narrow_monotone_layer_weighs_every_coordinate_alike(dim, hidden):
    """At init a layer narrower than D spreads its weight over all D coordinates, not the first ``hidden``."""
    model = PLNet(PLNetConfig(dim=dim, hidden=hidden, depth=1, seed=0, dtype=F64))
    layer = model.bilipnet.monotone[0]
    with torch.no_grad():
        q = _semi_orthogonal(layer.q_weight, layer.width, layer.dim)  # [hidden, dim]
    assert torch.allclose(q @ q.T, torch.eye(hidden, dtype=F64), atol=1e-10)
    per_coordinate = (q**2).sum(dim=0)  # sums to hidden; hidden / dim each on average
    assert float(per_coordinate[:hidden].sum()) < 3.0 * hidden * hidden / dim
    assert float(per_coordinate.max()) < 4.0 * hidden / dim
    # the Gaussian free matrix that it replaces put most of the weight on the first rows once D >> hidden
    # (W^T W ~ (D - hidden) / hidden I then dominates Z; at D = 100, hidden = 32 it was near even)
    gaussian = torch.randn(dim, hidden, generator=torch.Generator().manual_seed(0), dtype=F64) / math.sqrt(hidden)
    old = (_semi_orthogonal(gaussian, hidden, dim) ** 2).sum(dim=0)
    if dim >= 10 * hidden:
        assert float(old[:hidden].sum()) > 0.6 * hidden
    # the init is seeded and still a valid free parameter (finite, Cayley image orthonormal)
    again = isotropic_tall_init(dim, hidden, torch.Generator().manual_seed(9), F64, "cpu")
    assert torch.equal(again, isotropic_tall_init(dim, hidden, torch.Generator().manual_seed(9), F64, "cpu"))
    assert torch.isfinite(again).all()


@pytest.mark.parametrize("orthogonal,hidden", [("cayley", 48), ("householder", (16, 16))])
def test_inverse_residual_below_tolerance_batched(orthogonal, hidden):
    config = PLNetConfig(dim=6, depth=2, hidden=hidden, orthogonal=orthogonal, seed=11)
    model = _perturbed(config, scale=0.3, seed=3)
    gen = torch.Generator().manual_seed(9)
    y = 4.0 * torch.randn(64, 6, generator=gen, dtype=F64)
    x = model.g_net.inverse(y, tol=1e-6)
    assert x.shape == (64, 6)
    assert not x.requires_grad
    with torch.no_grad():
        res = (model.g(x) - y).norm(dim=1)
    assert float(res.max()) <= 1e-6
    # inverse of the forward recovers the input
    x0 = 2.0 * torch.randn(16, 6, generator=gen, dtype=F64)
    with torch.no_grad():
        x_back = model.g_net.inverse(model.g(x0), tol=1e-9, max_iter=5000)
    assert torch.allclose(x_back, x0, atol=1e-9 / model.mu * 10)


def test_inverse_raises_when_max_iter_too_small():
    model = _perturbed(PLNetConfig(dim=6, depth=2, hidden=(16, 16), seed=2), scale=0.3)
    y = 5.0 * torch.randn(8, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    with pytest.raises(PLNetInverseError, match="did not converge.*raise max_iter") as info:
        model.g_net.inverse(y, tol=1e-10, max_iter=1)
    assert info.value.residual > 1e-10
    assert info.value.tol == 1e-10
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        model.g_net.inverse(y, max_iter=0)


@pytest.mark.parametrize("hidden", [64, (24, 24)])
def test_minimizer_at_init_center(hidden):
    center = torch.tensor([1.5, -2.0, 0.25, 3.0], dtype=F64)
    model = PLNet(PLNetConfig(dim=4, hidden=hidden, init_center=center, seed=0))
    x_star = model.minimizer()
    assert x_star.shape == (4,)
    assert torch.allclose(x_star, center, atol=1e-5)
    with torch.no_grad():
        assert float(model(center.unsqueeze(0))) == pytest.approx(float(model.minimum_value()), abs=1e-12)


def test_default_center_is_random_not_origin_and_seeded():
    a = PLNet(PLNetConfig(dim=8, hidden=32, init_scale=5.0, seed=42))
    b = PLNet(PLNetConfig(dim=8, hidden=32, init_scale=5.0, seed=42))
    c = PLNet(PLNetConfig(dim=8, hidden=32, init_scale=5.0, seed=43))
    xa, xb, xc = a.minimizer(), b.minimizer(), c.minimizer()
    assert torch.equal(xa, xb)
    assert float((xa - xc).norm()) > 1.0
    assert float(xa.norm()) > 1.0  # not at the origin (|N(0, 25 I_8)| ~ 14)


def test_gradient_descent_converges_to_minimizer():
    model = _perturbed(PLNetConfig(dim=5, depth=2, hidden=(16, 16), seed=6), scale=0.3, seed=2)
    x_star = model.minimizer(tol=1e-10, max_iter=5000)
    nu = model.nu
    x = 3.0 * torch.randn(20, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    step = 1.0 / nu**2
    with model.frozen():
        for _ in range(20000):
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(model(x).sum(), x)
            x = x - step * grad
            if float(grad.norm(dim=1).max()) < 1e-9:
                break
    assert float((x.detach() - x_star).norm(dim=1).max()) < 1e-4


def test_no_other_stationary_point_pl_inequality():
    model = _perturbed(PLNetConfig(dim=6, depth=3, hidden=(16, 16), orthogonal="householder", seed=8), seed=4)
    x_star = model.minimizer(tol=1e-10, max_iter=5000)
    mu = model.mu
    gen = torch.Generator().manual_seed(3)
    x = x_star + torch.randn(3000, 6, generator=gen, dtype=F64) * torch.logspace(-3, 1.5, 3000, dtype=F64).unsqueeze(1)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    dist = (x.detach() - x_star).norm(dim=1)
    assert bool((grad.norm(dim=1) >= mu**2 * dist * (1 - 1e-6)).all())
    # f - c >= mu^2/2 |x - x*|^2 as well
    with torch.no_grad():
        gap = model(x.detach()) - model.minimum_value()
    assert bool((gap >= 0.5 * mu**2 * dist**2 * (1 - 1e-6)).all())


@pytest.mark.parametrize("orthogonal,hidden", CASES)
def test_gradients_reach_every_parameter(orthogonal, hidden):
    model = PLNet(PLNetConfig(dim=5, depth=2, hidden=hidden, orthogonal=orthogonal, householder_reflections=3, seed=1))
    x = 2.0 * torch.randn(64, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    target = torch.randn(64, generator=torch.Generator().manual_seed(1), dtype=F64)
    loss = ((model(x) - target) ** 2).mean()
    loss.backward()
    names = [name for name, p in model.named_parameters() if p.grad is None or float(p.grad.abs().max()) == 0.0]
    assert names == []
    assert {"bilipnet.log_nu", "bilipnet.log_tau_minus_one", "c"} <= {n for n, _ in model.named_parameters()}


def test_fixed_bounds_are_buffers():
    model = PLNet(PLNetConfig(dim=3, hidden=8, mu=0.5, nu=1.5, learn_bounds=False, seed=0))
    names = {n for n, _ in model.named_parameters()}
    assert "bilipnet.log_nu" not in names
    assert model.mu == pytest.approx(0.5) and model.nu == pytest.approx(1.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64(dtype):
    model = PLNet(PLNetConfig(dim=4, hidden=(16, 16), seed=5, dtype=dtype))
    x = torch.randn(10, 4, dtype=dtype)
    out = model(x)
    assert out.dtype == dtype and out.shape == (10,)
    x_star = model.minimizer()  # dtype-dependent default tolerance
    assert x_star.dtype == dtype
    assert float(model.g(x_star.unsqueeze(0)).detach().norm()) <= (1e-6 if dtype == torch.float64 else 1e-4)
    with pytest.raises(TypeError, match="input dtype"):
        model(x.to(torch.float64 if dtype == torch.float32 else torch.float32))


@pytest.mark.parametrize("orthogonal", ["cayley", "householder"])
def test_dimension_one(orthogonal):
    config = PLNetConfig(dim=1, hidden=8, orthogonal=orthogonal, init_center=torch.tensor([2.0]), seed=0)
    model = _perturbed(config, scale=0.1)
    x = torch.linspace(-10, 10, 401, dtype=F64).unsqueeze(1)
    with torch.no_grad():
        gx = model.g(x).squeeze(1)
    slope = (gx[1:] - gx[:-1]) / (x[1:, 0] - x[:-1, 0])
    mu, nu = model.g_net.bounds()
    # strictly monotone scalar function with slopes in [mu, nu] (up to sign from the orthogonal layers)
    assert bool((slope.abs() >= mu * (1 - 1e-9)).all()) and bool((slope.abs() <= nu * (1 + 1e-9)).all())
    assert bool((torch.sign(slope) == torch.sign(slope[0])).all())
    x_star = model.minimizer()
    assert float(model.g(x_star.unsqueeze(0)).detach().abs()) < 1e-6


def test_frozen_matches_and_blocks_parameter_gradients():
    model = PLNet(PLNetConfig(dim=5, hidden=(8, 8), seed=2))
    x = torch.randn(7, 5, dtype=F64, requires_grad=True)
    ref = model(x)
    (gx_ref,) = torch.autograd.grad(ref.sum(), x)
    with model.frozen():
        out = model(x)
        (gx,) = torch.autograd.grad(out.sum(), x, retain_graph=True)
        out.sum().backward()
    assert torch.allclose(out, ref, atol=1e-12) and torch.allclose(gx, gx_ref, atol=1e-12)
    frozen_params = [n for n, p in model.named_parameters() if "bias" not in n and n != "c"]
    assert len(frozen_params) >= 6
    assert all(dict(model.named_parameters())[n].grad is None for n in frozen_params)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="0 < mu < nu"):
        PLNetConfig(dim=3, mu=2.0, nu=1.0)
    with pytest.raises(ValueError, match="orthogonal must be one of"):
        PLNetConfig(dim=3, orthogonal="qr")
    with pytest.raises(ValueError, match="init_center must have shape \\[3\\]"):
        PLNetConfig(dim=3, init_center=torch.zeros(4))
    with pytest.raises(ValueError, match="hidden must be"):
        PLNetConfig(dim=3, hidden=(4, 0))
    assert PLNetConfig(dim=300, orthogonal="auto").orthogonal_kind == "householder"
    assert PLNetConfig(dim=30, orthogonal="auto").orthogonal_kind == "cayley"
    model = PLNet(PLNetConfig(dim=3, hidden=4, seed=0))
    with pytest.raises(ValueError, match="expected shape \\[B, 3\\].*unsqueeze"):
        model(torch.zeros(3, dtype=F64))


def test_box_penalty():
    x = torch.tensor([[0.0, 0.0], [2.0, -3.0]], dtype=F64)
    pen = box_penalty(x, -1.0, 1.0)
    assert pen.tolist() == pytest.approx([0.0, 1.0 + 4.0])
    with pytest.raises(ValueError, match="low must be <= high"):
        box_penalty(x, 1.0, -1.0)


def test_householder_wy_form_matches_explicit_product():
    from openmm_actionmin.models.orthogonal import HouseholderOrthogonal

    layer = HouseholderOrthogonal(9, 4, generator=torch.Generator().manual_seed(0), dtype=F64, device="cpu")
    w = layer.weights()
    v = layer.vectors.detach() / layer.vectors.detach().norm(dim=1, keepdim=True)
    r = torch.eye(9, dtype=F64)
    for i in range(4):
        r = r @ (torch.eye(9, dtype=F64) - 2.0 * torch.outer(v[i], v[i]))
    x = torch.randn(5, 9, dtype=F64)
    with torch.no_grad():
        assert torch.allclose(layer.rotate(x, w), x @ r.T, atol=1e-13)
        assert torch.allclose(layer.inverse_weights(layer.apply_weights(x, w), w), x, atol=1e-13)
    assert torch.allclose(r.T @ r, torch.eye(9, dtype=F64), atol=1e-13)


def test_warm_start_reuses_previous_minimizer():
    model = _perturbed(PLNetConfig(dim=6, depth=2, hidden=(16, 16), seed=12), scale=0.3)
    x_cold = model.minimizer(tol=1e-9, max_iter=5000)
    cold = sum(model.g_net.last_inverse_iterations)
    with torch.no_grad():  # a small "training step"
        for p in model.parameters():
            p.add_(1e-4 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=F64))
    x_warm = model.minimizer(tol=1e-9, max_iter=5000, x0=x_cold)
    warm = sum(model.g_net.last_inverse_iterations)
    x_ref = model.minimizer(tol=1e-9, max_iter=5000)
    assert torch.allclose(x_warm, x_ref, atol=1e-7)
    assert warm < cold


def test_minimizer_with_grad_matches_finite_differences():
    model = _perturbed(PLNetConfig(dim=4, depth=2, hidden=(8, 8), seed=3), scale=0.3)
    weights = torch.tensor([0.3, -1.0, 0.7, 2.0], dtype=F64)
    x_star = model.minimizer_with_grad(tol=1e-12, max_iter=20000)
    assert torch.allclose(x_star.detach(), model.minimizer(tol=1e-12, max_iter=20000), atol=1e-10)
    (x_star @ weights).backward()
    params = dict(model.named_parameters())
    checks = [("bilipnet.monotone.0.bias_hidden", 3), ("bilipnet.monotone.1.q_weight", 5), ("bilipnet.log_nu", None)]
    eps = 1e-6
    for name, index in checks:
        p = params[name]
        flat = p.data.view(-1)
        i = 0 if index is None else index
        analytic = float(p.grad.view(-1)[i])
        with torch.no_grad():
            flat[i] += eps
            plus = float(model.minimizer(tol=1e-12, max_iter=20000) @ weights)
            flat[i] -= 2 * eps
            minus = float(model.minimizer(tol=1e-12, max_iter=20000) @ weights)
            flat[i] += eps
        numeric = (plus - minus) / (2 * eps)
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-7), name
    assert float(params["c"].grad or 0.0) == 0.0  # c does not move the minimiser


def test_float32_large_scale_uses_relative_allowance():
    model = PLNet(PLNetConfig(dim=10, hidden=(16, 16), seed=0, init_scale=100.0, dtype=torch.float32))
    x_star = model.minimizer()  # float32 default: 1e-4 + 1e-5 |x*|
    with torch.no_grad():
        res = float(model.g(x_star.unsqueeze(0)).norm())
    assert res <= 1e-4 + 1e-5 * float(x_star.norm())
    assert float(x_star.norm()) > 100.0
    # an explicit absolute tolerance below float32 rounding at this scale is refused, not faked
    with pytest.raises(PLNetInverseError, match="did not converge"):
        model.minimizer(tol=1e-7, max_iter=50)
    with pytest.raises(ValueError, match="must be >= 0"):
        model.minimizer(tol=-1.0)


def _learned_growth(q: float, s: float, **kwargs) -> PLNet:
    model = _perturbed(PLNetConfig(growth="learned", **kwargs), scale=0.3, seed=2)
    with torch.no_grad():
        model.log_q.fill_(math.log(q / 2.0))
        model.log_s.fill_(math.log(s))
    return model


def test_learned_growth_head_starts_as_the_quadratic_plnet():
    quad = PLNet(PLNetConfig(dim=4, hidden=16, seed=3))
    learned = PLNet(PLNetConfig(dim=4, hidden=16, seed=3, growth="learned"))
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(quad(x), learned(x), atol=1e-12)
    assert learned.growth_exponent == 2.0 and quad.growth_exponent == 2.0
    with pytest.raises(ValueError, match="growth"):
        PLNetConfig(dim=4, growth="cubic")


def test_learned_growth_keeps_one_minimizer_and_changes_the_far_field():
    model = _learned_growth(1.0, 0.5, dim=5, depth=2, hidden=(16, 16), seed=6)
    assert model.growth_exponent == pytest.approx(1.0)
    x_star = model.minimizer(tol=1e-10, max_iter=5000)
    # gradient vanishes only at x*: |grad f| = h'(u) |J^T g| >= h'(u) mu |g| > 0 elsewhere
    gen = torch.Generator().manual_seed(3)
    x = x_star + torch.randn(2000, 5, generator=gen, dtype=F64) * torch.logspace(-3, 1.5, 2000, dtype=F64).unsqueeze(1)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    with torch.no_grad():
        g = model.g(x.detach())
        u = 0.5 * (g * g).sum(1)
        h_prime = (1 + u / 0.5) ** (0.5 * 1.0 - 1)
    assert bool((grad.norm(dim=1) >= h_prime * model.mu * g.norm(dim=1) * (1 - 1e-6)).all())
    with torch.no_grad():
        assert float(model(x_star[None])[0]) == pytest.approx(float(model.minimum_value()), abs=1e-9)
        # sub-quadratic far field: f - c grows like |g|^q, far below 1/2 |g|^2
        far = x_star + 1e3 * torch.ones(1, 5, dtype=F64)
        gap = float(model(far)[0] - model.minimum_value())
        gf = float(model.g(far).norm())
        assert gap < 0.01 * 0.5 * gf**2
        assert gap == pytest.approx(2 * 0.5 / 1.0 * ((1 + 0.5 * gf**2 / 0.5) ** 0.5 - 1), rel=1e-9)
    # the trainer's descent (Armijo backtracking) still reaches x*
    from openmm_actionmin.search.descent import DescentConfig, descend

    starts = 3.0 * torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    with model.frozen():
        path = descend(model, starts, DescentConfig(max_steps=3000, eps=1e-6))
    assert float((path.final - x_star).norm(dim=1).max()) < 1e-4


def test_learned_growth_parameters_get_gradients():
    model = PLNet(PLNetConfig(dim=3, hidden=8, seed=1, growth="learned"))
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    model(x).pow(2).mean().backward()
    assert model.log_q.grad is not None and float(model.log_q.grad.abs()) > 0
    assert model.log_s.grad is not None


def test_growth_floor_keeps_the_exponent_above_it():
    free = PLNet(PLNetConfig(dim=3, hidden=8, seed=1, growth="learned"))
    floored = PLNet(PLNetConfig(dim=3, hidden=8, seed=1, growth="learned", growth_min=0.5))
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    # at init both heads are the identity (q = 2), so the floor changes nothing there
    assert torch.allclose(free(x), floored(x), atol=1e-12) and floored.growth_exponent == pytest.approx(2.0)
    with torch.no_grad():
        free.log_q.fill_(-12.0)
        floored.log_q.fill_(-12.0)
    assert free.growth_exponent < 1e-4  # without the floor q collapses towards a logarithmic head
    assert floored.growth_exponent == pytest.approx(0.5, abs=1e-4)
    # the floored far field still grows like |g|^0.5: f - c = 2 s / q ((1 + u / s)^(q/2) - 1) with s = 1
    with torch.no_grad():
        far = 1e4 * torch.ones(1, 3, dtype=F64)
        gf = float(floored.g(far).norm())
        q = floored.growth_exponent
        gap = float(floored(far)[0] - floored.minimum_value())
        assert gap == pytest.approx(2 / q * ((1 + 0.5 * gf**2) ** (q / 2) - 1), rel=1e-9)
        assert gap > 10 * float(free(far)[0] - free.minimum_value())
    floored(x).pow(2).mean().backward()
    assert floored.log_q.grad is not None and float(floored.log_q.grad.abs()) > 0
    with pytest.raises(ValueError, match="growth_min"):
        PLNetConfig(dim=3, growth="learned", growth_min=2.0)
