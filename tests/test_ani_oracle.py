"""Tests of the TorchANI adapter with small real torchani models."""

import copy
import os

import pytest
import torch

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

torchani = pytest.importorskip("torchani")
from torchani.aev import ANIAngular, ANIRadial  # noqa: E402
from torchani.arch import Assembler  # noqa: E402
from torchani.nn import ANINetworks  # noqa: E402
from torchani.units import HARTREE_TO_KJOULEPERMOL  # noqa: E402

from openmm_actionmin.oracles import ASE_UNITS, OPENMM_UNITS, FiniteEnergy, OracleError, Units, validate_oracle  # noqa: E402
from openmm_actionmin.oracles.ani import ANIOracle, PER_HARTREE, torchani_state_dicts_dir  # noqa: E402

KJ_PER_HARTREE = 2625.4996394799  # CODATA 2018
EV_PER_HARTREE = 27.211386245988

# methane, Angstrom
METHANE = torch.tensor(
    [[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629], [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]],
    dtype=torch.float64,
)
METHANE_SPECIES = ["C", "H", "H", "H", "H"]


@pytest.fixture(scope="module")
def small_model():
    """A small ANI model (H, C, O) from torchani's own building blocks, random weights."""
    torch.manual_seed(0)
    asm = Assembler(periodic_table_index=True)
    asm.set_symbols(["H", "C", "O"])
    asm.set_global_cutoff_fn("cosine")
    asm.set_aev_computer(
        radial=ANIRadial.cover_linearly(start=0.8, cutoff=4.0, eta=16.0, num_shifts=4),
        angular=ANIAngular.cover_linearly(start=0.8, cutoff=3.0, eta=8.0, zeta=8.0, num_shifts=2, num_sections=2),
        strategy="pyaev",
    )
    asm.set_atomic_networks(
        cls=ANINetworks, ctor="build", kwargs={"dims": {}, "default_dims": (8, 8), "activation": "celu", "bias": True}
    )
    asm.set_self_energies({"H": -0.5, "C": -37.8, "O": -75.0})
    model = asm.assemble(1)
    return model.double()


def methane_batch(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return METHANE[None] + 0.08 * torch.randn(n, 5, 3, generator=gen, dtype=torch.float64)


def test_energies_and_forces_match_raw_model_kj_nm(small_model):
    oracle = ANIOracle(small_model, METHANE_SPECIES)
    assert oracle.units == OPENMM_UNITS
    x_ang = methane_batch(4, seed=0)
    e, f = oracle.energy_and_forces(x_ang / 10.0)  # nm in
    species = torch.tensor([[6, 1, 1, 1, 1]] * 4)
    coords = x_ang.clone().requires_grad_(True)
    raw = small_model((species, coords)).energies
    (grad,) = torch.autograd.grad(raw.sum(), coords)
    torch.testing.assert_close(e, raw.detach() * KJ_PER_HARTREE, rtol=1e-12, atol=0)
    # forces: -dE/dx in kJ/mol/nm = -(dE/dx_A in Hartree/Angstrom) * kJ/mol per Hartree * 10 Angstrom/nm
    torch.testing.assert_close(f, -grad * KJ_PER_HARTREE * 10.0, rtol=1e-10, atol=1e-10)
    # our CODATA 2018 constant and torchani's (CODATA 2014) agree to 1e-8
    assert PER_HARTREE["kj/mol"] == pytest.approx(HARTREE_TO_KJOULEPERMOL, rel=1e-8)
    assert oracle.counters.force_calls == 4


def test_ev_angstrom_units(small_model):
    oracle = ANIOracle(small_model, METHANE_SPECIES, units=ASE_UNITS)
    x = methane_batch(2, seed=1)
    raw = small_model((torch.tensor([[6, 1, 1, 1, 1]] * 2), x)).energies.detach()
    torch.testing.assert_close(oracle.energy(x), raw * EV_PER_HARTREE, rtol=1e-12, atol=0)


def test_validate_oracle_float64(small_model):
    oracle = ANIOracle(small_model, METHANE_SPECIES)
    x = methane_batch(3, seed=2) / 10.0
    gen = torch.Generator().manual_seed(3)
    random_x = torch.rand(6, 5, 3, generator=gen, dtype=torch.float64) * 0.4  # random boxes, 0.4 nm
    random_x[0, 1] = random_x[0, 0]  # coincident atoms
    report = validate_oracle(oracle, x, random_x=random_x, fd_step=1e-6, fd_rtol=1e-6)
    assert report.max_fd_rel_error < 1e-6


def test_water_and_float32(small_model):
    water = torch.tensor([[[0.0, 0.0, 0.0], [0.0957, 0.0, 0.0], [-0.024, 0.0927, 0.0]]], dtype=torch.float64)
    oracle = ANIOracle(small_model, ["O", "H", "H"])
    e64 = oracle.energy(water)
    assert bool(torch.isfinite(e64).all())
    # the oracle moves its model to its dtype in place: give the float32 oracle its own copy
    o32 = ANIOracle(copy.deepcopy(small_model), ["O", "H", "H"], dtype=torch.float32)
    e32, f32 = o32.energy_and_forces(water.float().repeat(3, 1, 1))
    assert e32.dtype == torch.float32 and f32.shape == (3, 3, 3)
    torch.testing.assert_close(e32[0].double(), e64[0], rtol=1e-5, atol=0)


def test_bad_species_and_units(small_model):
    with pytest.raises(
        OracleError, match=r"atom 1 is 'N', which this model does not support \(supported elements: H, C, O\)"
    ):
        ANIOracle(small_model, ["C", "N"])
    with pytest.raises(OracleError, match="atom 0 has unknown element symbol 'Qq'"):
        ANIOracle(small_model, ["Qq"])
    with pytest.raises(OracleError, match="ANIOracle supports energies"):
        ANIOracle(small_model, ["C"], units=Units("epsilon", "sigma"))


def test_pretrained_missing_weights_says_where(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        ANIOracle.pretrained("ANI2x", ["O", "H", "H"], data_dir=tmp_path)
    expected = tmp_path / "StateDicts" / "ani2x_state_dict.pt"
    assert str(expected) in str(info.value)
    assert "cannot be downloaded" in str(info.value)
    assert not (tmp_path / "StateDicts").exists()  # nothing created, nothing fetched
    with pytest.raises(OracleError, match="unknown pretrained TorchANI model 'ANI9'"):
        ANIOracle.pretrained("ANI9", ["H"])
    assert torchani_state_dicts_dir(tmp_path) == tmp_path / "StateDicts"


def test_pretrained_loads_local_weights(tmp_path):
    # weights of the ANI-1x architecture (random values) placed where torchani caches them
    from torchani.models import SYMBOLS_1X

    torch.manual_seed(1)
    asm = Assembler(periodic_table_index=True)
    asm.set_symbols(SYMBOLS_1X)
    asm.set_atomic_networks(ctor="ani1x")
    asm.set_global_cutoff_fn("cosine")
    asm.set_aev_computer(angular="ani1x", radial="ani1x", strategy="pyaev")
    asm.set_gsaes_as_self_energies("wb97x-631gd")
    reference = asm.assemble(8)
    (tmp_path / "StateDicts").mkdir()
    torch.save(reference.state_dict(), tmp_path / "StateDicts" / "ani1x_state_dict.pt")
    oracle = ANIOracle.pretrained(
        "ANI1x", METHANE_SPECIES, model_index=3, data_dir=tmp_path, transform=FiniteEnergy(1e9, 1e3)
    )
    x = methane_batch(2, seed=4)
    expected = reference[3].double()((torch.tensor([[6, 1, 1, 1, 1]] * 2), x)).energies.detach() * KJ_PER_HARTREE
    torch.testing.assert_close(oracle.energy(x / 10.0), expected, rtol=1e-10, atol=0)
