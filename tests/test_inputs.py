"""Users' inputs: XYZ clusters on the CLI, and ase.Atoms that cannot be searched, refused by name."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.io import read

import openmm_actionmin as am
from openmm_actionmin import cli
from openmm_actionmin.ase import BasinHoppingMin


@pytest.fixture()
def lj13_xyz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "lj13.xyz"
    Atoms("Ar13", positions=rng.uniform(-1.2, 1.2, (13, 3))).write(str(path))
    return path


def test_an_xyz_cluster_runs_on_the_cli_with_a_potential(lj13_xyz, tmp_path, capsys):
    out = tmp_path / "best.xyz"
    assert (
        cli.main(["minimize", str(lj13_xyz), "--potential", "lj", "--budget-s", "5", "--quiet", "--out", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert "epsilon" in text and "reached" in text
    assert len(read(str(out))) == 13


def test_an_xyz_cluster_with_an_ase_potential_is_in_ev(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "ar7.xyz"
    Atoms("Ar7", positions=rng.uniform(0, 4.0, (7, 3))).write(str(path))
    result = am.minimize(str(path), potential="ase:LennardJones", budget_s=5, progress=False)
    assert result.units.energy == "eV" and result.energy == pytest.approx(
        -16.505384, abs=1e-3
    )  # LJ7, sigma = epsilon = 1


def test_an_xyz_cluster_without_a_potential_and_a_missing_file_are_one_line_errors(lj13_xyz, capsys):
    assert cli.main(["minimize", str(lj13_xyz), "--budget-s", "1"]) == 2
    assert "needs --potential" in capsys.readouterr().err
    assert cli.main(["minimize", "missing_cluster.xyz", "--potential", "lj"]) == 2
    assert "file not found: missing_cluster.xyz" in capsys.readouterr().err
    assert cli.main(["minimize", "missing_thing", "--budget-s", "1"]) == 2
    assert "unknown target 'missing_thing': not a file here" in capsys.readouterr().err


def test_nan_coincident_and_periodic_atoms_are_refused_naming_the_atom():
    calc = LennardJones(rc=1e3)
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [1.1, 0, 0], [np.nan, 0, 0]])
    atoms.calc = calc
    with pytest.raises(ValueError, match="atom 2 has a non-finite position"):
        am.minimize(atoms, budget_s=1, progress=False)
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [1.1, 0, 0], [1.1, 0, 0]])
    atoms.calc = calc
    with pytest.raises(ValueError, match="atoms 1 and 2 sit at the same position"):
        am.minimize(atoms, budget_s=1, progress=False)
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [1.1, 0, 0]], cell=[5, 5, 5], pbc=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match="periodic"):
        am.minimize(atoms, budget_s=1, progress=False)


def test_constrained_atoms_are_refused_naming_the_constraint():
    from ase.constraints import FixAtoms

    atoms = Atoms("Ar3", positions=[[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0]])
    atoms.calc = LennardJones(rc=1e3)
    atoms.set_constraint(FixAtoms(indices=[0]))
    with pytest.raises(ValueError, match="constraints \\(FixAtoms\\)"):
        am.minimize(atoms, budget_s=1, progress=False)


class _NaNLennardJones(LennardJones):
    """ASE's LennardJones with every result replaced by NaN (a broken calculator)."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["energy"] = float("nan")
        self.results["forces"] = self.results["forces"] * np.nan


class _RaisingLennardJones(LennardJones):
    def calculate(self, *args, **kwargs):
        raise RuntimeError("SCF did not converge")


def test_a_calculator_returning_nan_is_named_as_the_cause(capsys):
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [3.8, 0, 0], [0, 3.8, 0]])
    atoms.calc = _NaNLennardJones(sigma=3.4, epsilon=0.0104, rc=1e3)
    with pytest.raises(ValueError, match="calculator _NaNLennardJones returned a non-finite energy"):
        am.minimize(atoms, budget_s=2, progress=False)
    with pytest.raises(ValueError, match="calculator _NaNLennardJones returned a non-finite energy"):
        BasinHoppingMin(atoms, budget_s=2).run(steps=1)
    atoms.calc = _RaisingLennardJones(sigma=3.4, epsilon=0.0104, rc=1e3)
    with pytest.raises(ValueError, match="_RaisingLennardJones raised RuntimeError: SCF did not converge"):
        am.minimize(atoms, budget_s=2, progress=False)
