"""Tests of the benchmarks' OpenBLAS thread limit (real NumPy / SciPy libraries)."""

import ctypes

import pytest

from openmm_actionmin.benchmarks import threads


@pytest.fixture()
def getters():
    """The thread getters of every OpenBLAS library loaded here (NumPy's and SciPy's)."""
    import scipy.optimize  # noqa: F401 - loads SciPy's OpenBLAS next to NumPy's

    out = []
    for path in threads._openblas_libraries():
        lib = ctypes.CDLL(path)
        getter = next((getattr(lib, name) for name in threads._BLAS_GETTERS if hasattr(lib, name)), None)
        if getter is not None:
            out.append(getter)
    if not out:
        pytest.skip("no OpenBLAS library with a thread getter is loaded in this process")
    return out


def test_blas_threads_limits_every_openblas_pool_and_restores_it(getters):
    before = [int(g()) for g in getters]
    with threads.blas_threads(1):
        assert [int(g()) for g in getters] == [1] * len(getters)
    assert [int(g()) for g in getters] == before


def test_blas_threads_none_leaves_the_pools_alone(getters):
    before = [int(g()) for g in getters]
    with threads.blas_threads(None):
        assert [int(g()) for g in getters] == before
