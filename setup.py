"""Install openmm_actionmin.

The top-level data folders ``forcefields/`` and ``systems/`` are copied into the
installed package as ``openmm_actionmin/_data/`` so that a regular (non-editable)
``pip install .`` finds them through :func:`openmm_actionmin.data_path`.
"""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIRS = ("forcefields", "systems")


class BuildPyWithData(build_py):
    """build_py that also copies the data folders into the built package."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "openmm_actionmin", "_data")
        for name in DATA_DIRS:
            src = os.path.join(HERE, name)
            dst = os.path.join(target, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(src, dst)


with open(os.path.join(HERE, "README.md"), encoding="utf-8") as fh:
    LONG_DESCRIPTION = fh.read()

setup(
    name="openmm_actionmin",
    version="0.1.0",
    description="Global minima of molecular and synthetic energy landscapes with action-trained PLNets",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["openmm_actionmin", "openmm_actionmin.*"]),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "torch>=2.1,<2.14",
        "openmm>=8.1",
        "pdbfixer>=1.9",
        "mdtraj>=1.10",
        "ase>=3.23",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "PeptideBuilder>=1.1",
        "cma>=3.3",
    ],
    extras_require={
        "ani": ["torchani>=2.2"],
        "dask": ["dask[distributed]>=2024.1"],
        "test": ["pytest>=7", "torchani>=2.2", "dask[distributed]>=2024.1", "ruff==0.16.9"],
    },
    entry_points={"console_scripts": ["actionmin=openmm_actionmin.cli:main"]},
    cmdclass={"build_py": BuildPyWithData},
)
