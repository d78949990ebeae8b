"""Atomic writes respect the umask and leave no temporary files; JSON output is strict."""

import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from openmm_actionmin import fileio
from openmm_actionmin.oracles.base import REDUCED_UNITS
from openmm_actionmin.result import Result


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _strict_loads(text):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_writer_respects_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    written = [
        fileio.atomic_write_text(tmp_path / "a.txt", "text"),
        fileio.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01"),
        fileio.atomic_torch_save({"x": torch.ones(2)}, tmp_path / "c.pt"),
        fileio.write_json(tmp_path / "d.json", {"x": 1}),
        Result(positions=np.zeros((2, 3)), energy=-1.0, units=REDUCED_UNITS, method="m").save(tmp_path / "r.json"),
        Result(positions=np.zeros((2, 3)), energy=-1.0, units=REDUCED_UNITS, method="m").save(tmp_path / "r.xyz"),
    ]
    assert [_mode(p) for p in written] == [mode] * len(written)
    # overwriting an existing file gives the same mode
    fileio.atomic_write_text(tmp_path / "a.txt", "again")
    assert _mode(tmp_path / "a.txt") == mode and (tmp_path / "a.txt").read_text() == "again"
    assert torch.load(tmp_path / "c.pt")["x"].tolist() == [1.0, 1.0]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.pt"
    fileio.atomic_write_text(target, "old")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        fileio.atomic_torch_save({"bad": Unpicklable()}, target)
    with pytest.raises(TypeError):
        fileio.write_json(tmp_path / "sub" / "x.json", {"bad": object()})
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.pt"]


def test_write_json_is_strict(tmp_path):
    data = {
        "nan": math.nan,
        "inf": -math.inf,
        "np": np.float32(1.5),
        "np_nan": np.float64("nan"),
        "int": np.int64(3),
        "flag": np.bool_(True),
        "array": np.array([[1.0, np.inf], [2.0, 3.0]]),
        "tensor": torch.tensor([0.5, float("nan")]),
        "scalar_tensor": torch.tensor(2),
        7: ("tuple", None),
    }
    text = fileio.write_json(tmp_path / "s.json", data).read_text()
    assert _strict_loads(text) == {
        "nan": None,
        "inf": None,
        "np": 1.5,
        "np_nan": None,
        "int": 3,
        "flag": True,
        "array": [[1.0, None], [2.0, 3.0]],
        "tensor": [0.5, None],
        "scalar_tensor": 2,
        "7": ["tuple", None],
    }
    with pytest.raises(ValueError, match="non-standard JSON constant NaN"):
        _strict_loads(json.dumps({"x": math.nan}))  # the check above would catch a bare NaN


def test_result_json_is_strict(tmp_path):
    res = Result(
        positions=np.zeros((2, 3)),
        energy=math.inf,
        units=REDUCED_UNITS,
        method="m",
        history=[{"wall_s": 0.1, "best_energy": math.nan}],
        extra={"final_rms_force": math.nan, "values": np.array([1.0, np.nan]), "count": np.int32(4)},
    )
    summary = res.to_dict()
    assert summary["energy"] is None and summary["extra"]["final_rms_force"] is None
    assert json.dumps(summary, allow_nan=False)  # to_dict alone is strict JSON
    loaded = _strict_loads(res.save(tmp_path / "r.json").read_text())
    assert loaded["extra"] == {"final_rms_force": None, "values": [1.0, None], "count": 4}
    assert loaded["history"] == [{"wall_s": 0.1, "best_energy": None}]
    assert loaded["positions"] == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
