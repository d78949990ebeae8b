"""Tests of the benchmarks' OpenBLAS thread limit (real NumPy / SciPy libraries)."""

import pytest

from openmm_actionmin import threads


@pytest.fixture()
def before():
    """Thread counts of every OpenBLAS library loaded here (NumPy's and SciPy's) before the test."""
    counts = threads.openblas_threads()
    if not counts:
        pytest.skip("no OpenBLAS library with a thread getter is loaded in this process")
    return counts


def test_blas_threads_limits_every_openblas_pool_and_restores_it(before):
    with threads.blas_threads(1):
        assert threads.openblas_threads() == [1] * len(before)
    assert threads.openblas_threads() == before


def test_blas_threads_none_leaves_the_pools_alone(before):
    with threads.blas_threads(None):
        assert threads.openblas_threads() == before
