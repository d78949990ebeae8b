"""Action-guided basin hopping: the canonical-form map, the trust region, the learned step, reproducibility, resume."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openmm_actionmin.search.basin_hopping import BasinHoppingConfig, basin_hopping
from guided import ActionGuidedStep, GuidedConfig, canonical_form, guided_basin_hopping, trust_region
from openmm_actionmin.search.local import minimize_batch
from openmm_actionmin.search.steps import MinimaDatabase
from openmm_actionmin.systems import binary_lj, lj_cluster


def _minimum(system, seed):
    gen = torch.Generator().manual_seed(seed)
    x = system.space.to_config(system.space.sample(1, gen)).to(torch.float64)
    return minimize_batch(system.oracle, x, fmax=1e-6, max_steps=3000).x[0].numpy()


def _scramble(x, rng, types=None):
    rot = Rotation.random(random_state=rng).as_matrix()
    perm = rng.permutation(len(x))
    return x[perm] @ rot.T + rng.normal(size=3) * 3.0, None if types is None else np.asarray(types)[perm]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_canonical_form_invariant_to_rotation_translation_permutation(seed):
    system = lj_cluster(13)
    rng = np.random.default_rng(seed)
    # generic structures (no symmetry, so no ties between principal axes or matches)
    ref = _minimum(system, 100 + seed) + rng.normal(scale=0.05, size=(13, 3))
    x = _minimum(system, 200 + seed) + rng.normal(scale=0.05, size=(13, 3))
    a = canonical_form(x, ref)
    y, _ = _scramble(x, rng)
    b = canonical_form(y, ref)
    np.testing.assert_allclose(a, b, atol=1e-8)
    # a rigid motion and a relabelling: the energy is unchanged
    e = system.oracle.energy(torch.as_tensor(np.stack([x, a, b])))
    assert float(e[1]) == pytest.approx(float(e[0]), abs=1e-9) and float(e[2]) == pytest.approx(float(e[0]), abs=1e-9)


def test_canonical_form_recovers_a_scrambled_copy_of_the_reference():
    rng = np.random.default_rng(3)
    ref = _minimum(lj_cluster(13), 7) + rng.normal(scale=0.05, size=(13, 3))
    y, _ = _scramble(ref, rng)
    np.testing.assert_allclose(canonical_form(y, ref), ref, atol=1e-8)


def test_canonical_form_matches_within_species():
    system = binary_lj(12, 4)
    types = np.asarray(system.types)
    rng = np.random.default_rng(5)
    ref = _minimum(system, 1) + rng.normal(scale=0.05, size=(16, 3))
    x = _minimum(system, 2) + rng.normal(scale=0.05, size=(16, 3))
    a = canonical_form(x, ref, types)
    perm = np.concatenate([rng.permutation(np.flatnonzero(types == t)) for t in np.unique(types)])
    shuffled = np.empty_like(x)
    shuffled[np.sort(perm)] = x[perm]  # a permutation inside each species
    rot = Rotation.random(random_state=rng).as_matrix()
    b = canonical_form(shuffled @ rot.T + 1.5, ref, types)
    np.testing.assert_allclose(a, b, atol=1e-8)
    # every canonical atom is an atom of its own species in x
    for t in np.unique(types):
        da = np.sort(np.linalg.norm(a[types == t] - a.mean(0), axis=1))
        dx = np.sort(np.linalg.norm(x[types == t] - x.mean(0), axis=1))
        np.testing.assert_allclose(da, dx, atol=1e-8)
    e = system.oracle.energy(torch.as_tensor(np.stack([x, a])))
    assert float(e[1]) == pytest.approx(float(e[0]), abs=1e-9)


def test_trust_region_of_copies_is_the_structure():
    rng = np.random.default_rng(0)
    ref = _minimum(lj_cluster(13), 4) + rng.normal(scale=0.05, size=(13, 3))
    copies = [ref] + [_scramble(ref, rng)[0] for _ in range(3)]
    centre, half = trust_region(copies, margin=0.1)
    np.testing.assert_allclose(centre, ref - ref.mean(0), atol=1e-8)
    np.testing.assert_allclose(half, 0.1, atol=1e-8)
    _, raw = trust_region(copies, canonical=False, margin=0.1)
    assert raw.mean() > 0.5  # without the map, relabelled copies span the whole cluster


def test_learned_step_proposes_inside_the_trust_region():
    from openmm_actionmin.search.action import ActionConfig

    system = lj_cluster(13)
    db = MinimaDatabase(10)
    for s in range(5):
        x = _minimum(system, 30 + s)
        db.add(x, float(system.oracle.energy(torch.as_tensor(x)[None])))
    cfg = ActionConfig(budget_s=None, max_rounds=2, **GuidedConfig().action_overrides)
    step = ActionGuidedStep(db, system.oracle, cfg, train_rounds=2, n_minima=4, max_half_width=0.3)
    cand, record = step.candidate()
    centre, half = trust_region([m.x for m in db.minima[:4]], max_half_width=0.3)
    assert cand.shape == (13, 3)
    assert bool(np.all(np.abs(cand.numpy() - centre) <= half + 1e-9))
    assert record["region_half_width"] <= 0.3 + 1e-12
    # the step replaces one walker's proposal by the candidate when due
    step.every = 1
    x = torch.as_tensor(np.stack([m.x for m in db.minima[:3]]))
    out = step.propose(x, torch.full((3,), 0.3, dtype=torch.float64), torch.Generator().manual_seed(0))
    inside = [bool(np.all(np.abs(o.numpy() - centre) <= half + 1e-9)) for o in out]
    assert sum(inside) >= 1 and len(step.runs) == 2


def _small(seed=0, **kw):
    bh = BasinHoppingConfig(n_walkers=4, budget_s=None, max_steps=4, stop_at_target=False, **kw)
    return GuidedConfig(basin_hopping=bh, seed=seed, budget_s=None, train_rounds=1, every=3, min_minima=2)


def test_seeded_guided_run_is_reproducible():
    a = guided_basin_hopping(lj_cluster(10), _small(seed=2))
    b = guided_basin_hopping(lj_cluster(10), _small(seed=2))
    assert len(a.extra["action_runs"]) >= 1
    assert a.energy == b.energy and a.force_calls == b.force_calls
    assert [r["candidate_energy"] for r in a.extra["action_runs"]] == [
        r["candidate_energy"] for r in b.extra["action_runs"]
    ]
    assert a.method == "guided_bh"


def test_ablation_is_plain_basin_hopping():
    cfg = dataclasses.replace(_small(seed=1), action=False)
    a = guided_basin_hopping(lj_cluster(10), cfg)
    b = basin_hopping(lj_cluster(10), dataclasses.replace(cfg.basin_hopping, seed=1, budget_s=None))
    assert a.energy == b.energy and a.force_calls == b.force_calls and "action_runs" not in a.extra


def test_guided_run_resumes(tmp_path):
    ck = str(tmp_path / "guided.ckpt")
    first = guided_basin_hopping(lj_cluster(10), _small(checkpoint_path=ck))
    cfg = _small(checkpoint_path=ck, resume=True)
    cfg = dataclasses.replace(cfg, basin_hopping=dataclasses.replace(cfg.basin_hopping, max_steps=8))
    second = guided_basin_hopping(lj_cluster(10), cfg)
    assert second.extra["resumed"] is True
    assert second.extra["hops"] > first.extra["hops"]
    assert second.energy <= first.energy + 1e-9


def test_config_errors():
    with pytest.raises(ValueError, match="fraction"):
        GuidedConfig(fraction=1.5)
    with pytest.raises(ValueError, match="same shape"):
        canonical_form(np.zeros((3, 3)), np.zeros((4, 3)))
