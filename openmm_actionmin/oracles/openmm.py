"""OpenMM adapter: batched energies and forces from a pool of OpenMM Contexts.

:class:`OpenMMOracle` evaluates ``x [B, N, 3]`` (nm) to ``energy [B]`` (kJ/mol)
and ``forces [B, N, 3]`` (kJ/mol/nm) through ``Context.setPositions`` and one
``Context.getState(getEnergy=True, getForces=True)`` per configuration, so the
numbers are exactly what OpenMM reports for the chosen platform.

Design notes:

* **Platform**: CUDA, then OpenCL, then CPU, then Reference, unless a name is
  given; the chosen one is ``oracle.platform_name``. The CPU platform keeps
  positions in float32 (forces ~1e-6 relative from Reference); use
  ``platform="Reference"`` where finite differences need double precision.
* **Context pool**: ``n_contexts = K`` Contexts; a batch is split into K
  contiguous slices evaluated concurrently in a thread pool (``getState``
  releases the GIL). On CPU, ``K * threads_per_context`` may not exceed
  ``os.cpu_count()`` (default threads ``max(1, cpu_count // K)``, set through
  the platform's ``Threads`` property). On CUDA/OpenCL each Context gets a
  ``DeviceIndex`` round-robin over the visible devices unless one is given.
  Use one Context per GPU: on one H200, Trp-cage OBC2 ran 5,583 evaluations/s
  with one CUDA Context (6.4x the 16-thread CPU platform) and 2,446 and 2,257/s
  with pools of 2 and 4 Contexts, because Contexts on one device are time-sliced
  (``bench/results/gpu/h200.json``). A GPU pool with more Contexts than
  visible devices therefore warns.
* **Processes**: never fork a process after creating a Context (the child
  hangs or crashes). Use ``multiprocessing.get_context("spawn")`` and build the
  oracle inside each worker. An oracle used in a forked child raises
  :class:`~.base.OracleError` instead of hanging.
* **Constraints**: the oracle evaluates the potential energy of unconstrained
  coordinates, so a System with constraints is rejected (a constrained bond has
  no bond term in OpenMM's force fields, so silently dropping the constraint
  would free the bond). The constructors build Systems with
  ``constraints=None, rigidWater=False``.
* **Failures**: a closing pair of atoms gives raw energies above the cap
  (3e30 to 4e30 kJ/mol for two CLN025 atoms 1e-3 nm apart) and, closer, an
  overflow to inf or NaN on the single-precision platforms; both are returned
  as the cap by the base class (``nonfinite_energy``, zero forces, counted in
  ``counters.capped``), so the energy never falls as the pair closes in. An
  ``OpenMMException`` raised for a finite but absurd configuration (e.g.
  coordinates of 1e20 nm, which overflow to NaN inside the CPU platform) is
  caught per configuration and becomes the cap too (also counted in
  ``counters.nonfinite``); the last message is kept in
  ``oracle.last_exception``.
* **Units**: OpenMM speaks kJ/mol and nm. An oracle may speak other units via
  ``length_scale`` (nm per oracle length unit) and ``energy_scale`` (kJ/mol per
  oracle energy unit); the cluster force fields of this package use
  sigma = 1 nm and epsilon = 1 kJ/mol, so reduced units map with scale 1.
* **Implicit solvent**: ``solvent="obc2"`` (default of :meth:`from_pdb`) adds the
  native ``openmm.GBSAOBCForce`` to the vacuum system (charges from the
  NonbondedForce, radii and screening factors read from OpenMM's own OBC2
  parameter function ``GBSAOBC2Force.getStandardParameters``, solute dielectric
  1, solvent 78.5, NoCutoff). It is the same model as ``implicit/obc2.xml``
  (``solvent="obc2-xml"``, a CustomGBForce) to ~3e-4 kJ/mol (the two use
  Coulomb constants 138.935456 and 138.935485), and about 10x faster on the
  CPU platform: Trp-cage, one thread, 4.6 ms vs 52 ms per evaluation (vacuum
  1.5 ms), measured by ``bench/oracles.py`` on a loaded 2-core machine.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .base import DEFAULT_NONFINITE_ENERGY, OPENMM_UNITS, REDUCED_UNITS, EnergyOracle, FiniteEnergy, OracleError, Units

#: Platforms tried in order when none is named.
PLATFORM_ORDER = ("CUDA", "OpenCL", "CPU", "Reference")
#: Solvent models understood by :meth:`OpenMMOracle.from_pdb`.
SOLVENTS = ("obc2", "obc2-xml", "gbn2", "none")
#: OBC2 dielectric constants (OpenMM's and Amber's defaults).
OBC2_SOLUTE_DIELECTRIC = 1.0
OBC2_SOLVENT_DIELECTRIC = 78.5


def available_platforms() -> List[str]:
    """Names of the OpenMM platforms registered in this process."""
    import openmm

    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def _visible_gpu_count() -> int:
    """Number of visible GPUs (CUDA_VISIBLE_DEVICES, else torch, else 1)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [s for s in env.split(",") if s.strip() and s.strip() != "-1"]
        return max(1, len(ids))
    try:
        return max(1, int(torch.cuda.device_count()))
    except Exception:  # pragma: no cover - torch without CUDA support
        return 1


def pool_warning(platform: str, n_contexts: int, n_devices: int) -> Optional[str]:
    """The warning for a GPU pool with more Contexts than devices, else ``None``.

    Args:
        platform: OpenMM platform name.
        n_contexts: Contexts in the pool.
        n_devices: Visible GPUs.

    Returns:
        A message saying what to do, or ``None`` when the pool is sensible.
    """
    if platform not in ("CUDA", "OpenCL") or n_contexts <= n_devices:
        return None
    return (
        f"{n_contexts} {platform} Contexts share {n_devices} GPU(s): Contexts on one device are time-sliced, and on "
        f"one H200 a pool of 2 was 2.3x slower than one Context (bench/results/gpu/h200.json). "
        f"Use n_contexts={n_devices} (one per GPU)"
    )


def build_native_obc2(
    system,
    topology,
    *,
    solute_dielectric: float = OBC2_SOLUTE_DIELECTRIC,
    solvent_dielectric: float = OBC2_SOLVENT_DIELECTRIC,
):
    """Add OpenMM's native OBC2 implicit solvent (``GBSAOBCForce``) to a vacuum System.

    Charges come from the System's single ``NonbondedForce``; radii (mbondi2,
    nm) and screening scale factors come from OpenMM's standard OBC2 parameters
    (``openmm.app.internal.customgbforces.GBSAOBC2Force.getStandardParameters``,
    the function ``implicit/obc2.xml`` uses), so the model equals
    ``amber14-all.xml + implicit/obc2.xml`` with its ACE surface term. NoCutoff.

    Args:
        system: ``openmm.System`` built without implicit solvent, NoCutoff (it
            is modified in place and returned).
        topology: The matching ``openmm.app.Topology``.
        solute_dielectric: Solute dielectric constant.
        solvent_dielectric: Solvent dielectric constant.

    Returns:
        The same System with a ``GBSAOBCForce`` added.

    Raises:
        OracleError: the System lacks exactly one NonbondedForce, uses a cutoff,
            or its particle count differs from the topology's atoms.
    """
    import openmm
    from openmm import unit
    from openmm.app.internal.customgbforces import GBSAOBC2Force

    nonbonded = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if len(nonbonded) != 1:
        raise OracleError(f"native OBC2 needs exactly one NonbondedForce in the System, found {len(nonbonded)}")
    nb = nonbonded[0]
    if nb.getNonbondedMethod() != openmm.NonbondedForce.NoCutoff:
        raise OracleError(
            "native OBC2 here supports NoCutoff systems only; build the System with nonbondedMethod=NoCutoff"
        )
    if topology.getNumAtoms() != system.getNumParticles():
        raise OracleError(
            f"topology has {topology.getNumAtoms()} atoms but the System has {system.getNumParticles()} particles"
        )
    params = np.asarray(GBSAOBC2Force.getStandardParameters(topology), dtype=np.float64)
    gb = openmm.GBSAOBCForce()
    gb.setSoluteDielectric(float(solute_dielectric))
    gb.setSolventDielectric(float(solvent_dielectric))
    gb.setNonbondedMethod(openmm.GBSAOBCForce.NoCutoff)
    for i in range(system.getNumParticles()):
        charge = nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
        gb.addParticle(charge, float(params[i, 0]), float(params[i, 1]))
    system.addForce(gb)
    return system


def _cluster_templates(path: Path) -> Dict[str, Any]:
    """Map each one-atom residue template of a cluster XML to its element (or None)."""
    import xml.etree.ElementTree as ET

    from openmm.app import element as elem

    try:
        root = ET.parse(str(path)).getroot()
    except ET.ParseError as exc:
        raise OracleError(f"{path} is not valid force-field XML: {exc}") from exc
    type_elements = {}
    for t in root.iter("Type"):
        symbol = t.get("element")
        type_elements[t.get("name")] = elem.get_by_symbol(symbol) if symbol else None
    out: Dict[str, Any] = {}
    for residue in root.iter("Residue"):
        atoms = residue.findall("Atom")
        if len(atoms) == 1:
            out[residue.get("name")] = type_elements.get(atoms[0].get("type"))
    return out


class OpenMMOracle(EnergyOracle):
    """Energies and forces of an OpenMM System, batched over a Context pool.

    ``x [B, N, 3]`` (oracle length units, nm by default) ->
    ``energy [B]`` (kJ/mol by default), ``forces [B, N, 3]`` (kJ/mol/nm).

    Args:
        topology: ``openmm.app.Topology`` (or None); if given its atom count
            must equal the System's particles.
        system: ``openmm.System`` without constraints (it is copied; force
            groups of the copy are set by force class, see
            :meth:`group_energies`).
        platform: Platform name (``"CUDA"``, ``"OpenCL"``, ``"CPU"``,
            ``"Reference"``) or None for the first that works in
            :data:`PLATFORM_ORDER`.
        platform_properties: Extra platform properties (e.g.
            ``{"Precision": "mixed"}``), applied to every Context.
        n_contexts: Number K of Contexts in the pool.
        threads_per_context: CPU threads per Context (CPU platform only);
            default ``max(1, os.cpu_count() // K)``.
        units: Units of the oracle's inputs and outputs.
        length_scale: nm per oracle length unit.
        energy_scale: kJ/mol per oracle energy unit.
        dtype: Output dtype.
        device: Output device.
        transform: Optional :class:`~.base.FiniteEnergy`.
        nonfinite_energy: Cap for non-finite output, in oracle energy units.

    Attributes:
        topology: The topology (or None).
        system: The oracle's copy of the System.
        platform_name: The platform in use.
        threads_per_context: Threads per Context on CPU (None elsewhere).
        group_names: Force-group index -> force class name.
        last_exception: Message of the last OpenMM exception turned into a cap.
        positions: Optional start configuration ``[N, 3]`` (set by the
            constructors from files).
    """

    def __init__(
        self,
        topology,
        system,
        *,
        platform: Optional[str] = None,
        platform_properties: Optional[Mapping[str, str]] = None,
        n_contexts: int = 1,
        threads_per_context: Optional[int] = None,
        units: Units = OPENMM_UNITS,
        length_scale: float = 1.0,
        energy_scale: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: Union[str, torch.device] = "cpu",
        transform: Optional[FiniteEnergy] = None,
        nonfinite_energy: float = DEFAULT_NONFINITE_ENERGY,
    ) -> None:
        import openmm

        n_particles = system.getNumParticles()
        super().__init__(
            n_atoms=n_particles,
            units=units,
            dtype=dtype,
            device=device,
            transform=transform,
            nonfinite_energy=nonfinite_energy,
        )
        if topology is not None and topology.getNumAtoms() != n_particles:
            raise OracleError(
                f"topology has {topology.getNumAtoms()} atoms but the System has {n_particles} particles; "
                "build the System from this topology"
            )
        if system.getNumConstraints() > 0:
            raise OracleError(
                f"the System has {system.getNumConstraints()} constraints; the oracle evaluates unconstrained "
                "coordinates. Rebuild it with ForceField.createSystem(..., constraints=None, rigidWater=False)"
            )
        if int(n_contexts) < 1:
            raise OracleError(f"n_contexts must be at least 1, got {n_contexts}")
        if not (np.isfinite(length_scale) and length_scale > 0 and np.isfinite(energy_scale) and energy_scale > 0):
            raise OracleError(f"length_scale and energy_scale must be positive, got {length_scale}, {energy_scale}")
        self.topology = topology
        self.system = copy.deepcopy(system)
        self.n_contexts = int(n_contexts)
        self.length_scale = float(length_scale)
        self.energy_scale = float(energy_scale)
        self.positions: Optional[torch.Tensor] = None
        self.last_exception: Optional[str] = None
        self._creator_pid = os.getpid()
        self._closed = False

        # one force group per force class name (OpenMM allows groups 0..31)
        names: List[str] = []
        for force in self.system.getForces():
            name = type(force).__name__
            if name not in names:
                names.append(name)
            if len(names) > 32:
                raise OracleError("the System has more than 32 force classes; OpenMM has only 32 force groups")
            force.setForceGroup(names.index(name))
        self.group_names: Dict[int, str] = dict(enumerate(names))

        self._contexts: List[Any] = []
        self._integrators: List[Any] = []
        candidates = [platform] if platform is not None else [p for p in PLATFORM_ORDER if p in available_platforms()]
        if platform is not None and platform not in available_platforms():
            raise OracleError(f"OpenMM platform {platform!r} is not available here; available: {available_platforms()}")
        errors = []
        for name in candidates:
            try:
                self._build_pool(openmm.Platform.getPlatformByName(name), platform_properties, threads_per_context)
            except openmm.OpenMMException as exc:
                self._release_contexts()
                errors.append(f"{name}: {exc}")
                if platform is not None:
                    raise OracleError(f"cannot create an OpenMM Context on platform {name}: {exc}") from exc
                continue
            self.platform_name = name
            break
        else:
            raise OracleError("no OpenMM platform could create a Context: " + "; ".join(errors))
        given = platform_properties is not None and "DeviceIndex" in platform_properties
        message = None if given else pool_warning(self.platform_name, self.n_contexts, _visible_gpu_count())
        if message is not None:
            warnings.warn(message, stacklevel=2)
        self._executor = ThreadPoolExecutor(max_workers=self.n_contexts) if self.n_contexts > 1 else None

    # ----------------------------------------------------------- context pool
    def _build_pool(self, platform, properties: Optional[Mapping[str, str]], threads: Optional[int]) -> None:
        import openmm

        name = platform.getName()
        props = {str(k): str(v) for k, v in (properties or {}).items()}
        self.threads_per_context = None
        if name == "CPU":
            cpus = os.cpu_count() or 1
            if threads is None:
                threads = int(props["Threads"]) if "Threads" in props else max(1, cpus // self.n_contexts)
            elif "Threads" in props and int(props["Threads"]) != int(threads):
                raise OracleError(
                    f"threads_per_context={threads} contradicts platform_properties['Threads']={props['Threads']}; "
                    "give one"
                )
            threads = int(threads)
            if threads < 1:
                raise OracleError(f"threads_per_context must be at least 1, got {threads}")
            if self.n_contexts * threads > cpus:
                raise OracleError(
                    f"{self.n_contexts} contexts x {threads} threads = {self.n_contexts * threads} exceeds the "
                    f"{cpus} CPUs of this machine; lower n_contexts or threads_per_context"
                )
            props["Threads"] = str(threads)
            self.threads_per_context = threads
        n_devices = _visible_gpu_count() if name in ("CUDA", "OpenCL") else 1
        for k in range(self.n_contexts):
            p = dict(props)
            if name in ("CUDA", "OpenCL") and "DeviceIndex" not in p and n_devices > 1:
                p["DeviceIndex"] = str(k % n_devices)
            integrator = openmm.VerletIntegrator(0.001)
            context = openmm.Context(self.system, integrator, platform, p)
            self._integrators.append(integrator)
            self._contexts.append(context)

    def _release_contexts(self) -> None:
        self._contexts = []
        self._integrators = []

    def _check_usable(self) -> None:
        if self._closed:
            raise OracleError("this OpenMMOracle is closed; create a new one")
        if os.getpid() != self._creator_pid:
            raise OracleError(
                f"this OpenMMOracle was created in process {self._creator_pid} and is used in process {os.getpid()} "
                "(a fork): OpenMM Contexts do not survive fork. Use multiprocessing.get_context('spawn') and build "
                "the oracle inside each worker"
            )

    def _split(self, b: int) -> List[Tuple[int, int]]:
        k = min(self.n_contexts, b)
        bounds = np.linspace(0, b, k + 1).round().astype(int)
        return [(int(bounds[i]), int(bounds[i + 1])) for i in range(k)]

    def _run_pool(self, fn, b: int) -> None:
        slices = self._split(b)
        if self._executor is None or len(slices) == 1:
            for k, (lo, hi) in enumerate(slices):
                fn(k, lo, hi)
            return
        futures = [self._executor.submit(fn, k, lo, hi) for k, (lo, hi) in enumerate(slices)]
        for f in futures:
            f.result()

    # ------------------------------------------------------------ evaluation
    def _evaluate(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        import openmm

        self._check_usable()
        with np.errstate(over="ignore"):  # an overflow to inf is left to OpenMM and capped
            pos = np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float64, copy=False)) * self.length_scale
        b = pos.shape[0]
        energy = np.empty(b, dtype=np.float64)
        forces = np.empty_like(pos)
        errors: List[str] = []

        def work(k: int, lo: int, hi: int) -> None:
            context = self._contexts[k]
            for i in range(lo, hi):
                try:
                    context.setPositions(pos[i])
                    state = context.getState(getEnergy=True, getForces=True)
                    energy[i] = state.getPotentialEnergy()._value
                    forces[i] = state.getForces(asNumpy=True)._value
                except openmm.OpenMMException as exc:
                    energy[i] = np.nan
                    forces[i] = np.nan
                    errors.append(f"configuration {i}: {exc}")

        self._run_pool(work, b)
        if errors:
            self.last_exception = errors[-1]
        energy /= self.energy_scale
        forces *= self.length_scale / self.energy_scale
        return torch.from_numpy(energy), torch.from_numpy(forces)

    def group_energies(self, x) -> Dict[str, torch.Tensor]:
        """Energies of each force group, labelled by force class name.

        Forces of the same class (e.g. two ``CustomBondForce``) share one group.
        No finite transform is applied. A group energy above the cap
        ``nonfinite_energy`` or non-finite is replaced by the cap (counted once
        per configuration in ``counters.capped``, and in ``counters.nonfinite``
        when non-finite). Counts one force call per configuration.

        Args:
            x: Configurations ``[B, N, 3]`` in oracle length units.

        Returns:
            ``{force class name: energy [B]}`` in oracle energy units; the values
            sum to the total raw energy wherever no group is at the cap.
        """
        import openmm

        x = self.as_batch(x).detach()
        self._check_usable()
        with np.errstate(over="ignore"):
            pos = np.ascontiguousarray(x.cpu().numpy().astype(np.float64, copy=False)) * self.length_scale
        b = pos.shape[0]
        groups = sorted(self.group_names)
        out = np.empty((len(groups), b), dtype=np.float64)

        def work(k: int, lo: int, hi: int) -> None:
            context = self._contexts[k]
            for i in range(lo, hi):
                try:
                    context.setPositions(pos[i])
                    for g in groups:
                        out[g, i] = context.getState(getEnergy=True, groups={g}).getPotentialEnergy()._value
                except openmm.OpenMMException as exc:
                    out[:, i] = np.nan
                    self.last_exception = f"configuration {i}: {exc}"

        start = time.perf_counter()
        self._run_pool(work, b)
        self.counters.seconds += time.perf_counter() - start
        self.counters.force_calls += b
        self.counters.batches += 1
        out /= self.energy_scale
        nonfinite = ~np.isfinite(out)
        with np.errstate(invalid="ignore"):
            bad = nonfinite | (out > self.nonfinite_energy)
        if bad.any():
            self.counters.nonfinite += int(nonfinite.any(axis=0).sum())
            self.counters.capped += int(bad.any(axis=0).sum())
            out[bad] = self.nonfinite_energy
        return {self.group_names[g]: torch.as_tensor(out[g], dtype=self.dtype, device=self.device) for g in groups}

    # -------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Release the Contexts and the thread pool (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._release_contexts()
        self._closed = True

    def __reduce__(self):
        raise TypeError(
            "an OpenMMOracle cannot be pickled (it holds OpenMM Contexts); build it inside each worker process "
            "(multiprocessing start method 'spawn')"
        )

    def __repr__(self) -> str:
        return (
            f"OpenMMOracle(n_atoms={self.n_atoms}, platform={getattr(self, 'platform_name', None)}, "
            f"n_contexts={self.n_contexts}, threads_per_context={getattr(self, 'threads_per_context', None)}, "
            f"units={self.units.energy}|{self.units.length})"
        )

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_pdb(
        cls,
        path: Union[str, os.PathLike],
        *,
        forcefield: Union[str, Sequence[str]] = "amber14-all.xml",
        solvent: str = "obc2",
        keep_water: bool = False,
        keep_heterogens: bool = False,
        add_hydrogens: bool = True,
        ph: float = 7.0,
        add_missing_residues: bool = False,
        seed: int = 0,
        **oracle_kwargs,
    ) -> "OpenMMOracle":
        """Prepare a PDB file and build its oracle (kJ/mol, nm).

        The PDB is prepared by :func:`openmm_actionmin.pdbprep.prepare_pdb`
        (pdbfixer: waters/heterogens removed unless kept, missing heavy atoms
        and hydrogens added, residues checked against the force field). The
        System is built with NoCutoff, ``constraints=None``,
        ``rigidWater=False`` and no centre-of-mass motion remover.

        Args:
            path: PDB file.
            forcefield: Protein force-field XML name(s), default amber14-all.
            solvent: ``"obc2"`` (native GBSAOBCForce, default), ``"obc2-xml"``
                (``implicit/obc2.xml``, CustomGBForce), ``"gbn2"``
                (``implicit/gbn2.xml``) or ``"none"`` (vacuum).
            keep_water: Keep water residues.
            keep_heterogens: Keep heterogens (they need templates).
            add_hydrogens: Add missing hydrogens.
            ph: pH for protonation.
            add_missing_residues: Rebuild internal gaps found from SEQRES.
            seed: Seed of the placement of added atoms (same file and seed give
                the same prepared positions).
            **oracle_kwargs: Passed to :class:`OpenMMOracle` (platform,
                n_contexts, threads_per_context, transform, ...).

        Returns:
            The oracle, with ``.topology``, ``.positions`` (prepared start
            ``[N, 3]`` nm, float64), ``.modeller`` (``openmm.app.Modeller``),
            ``.preparation`` (:class:`~openmm_actionmin.pdbprep.PreparedStructure`)
            and ``.solvent``.

        Raises:
            PDBPreparationError: see :func:`~openmm_actionmin.pdbprep.prepare_pdb`.
            OracleError: unknown solvent.
        """
        from openmm import app

        from ..pdbprep import load_forcefield, prepare_pdb

        if solvent not in SOLVENTS:
            raise OracleError(f"unknown solvent {solvent!r}; choose one of {SOLVENTS}")
        files = [forcefield] if isinstance(forcefield, (str, os.PathLike)) else list(forcefield)
        files = [str(f) for f in files]
        if solvent == "obc2-xml":
            files.append("implicit/obc2.xml")
        elif solvent == "gbn2":
            files.append("implicit/gbn2.xml")
        ff = load_forcefield(files)
        prepared = prepare_pdb(
            path,
            forcefield=ff,
            keep_water=keep_water,
            keep_heterogens=keep_heterogens,
            add_hydrogens=add_hydrogens,
            ph=ph,
            add_missing_residues=add_missing_residues,
            seed=seed,
        )
        system = ff.createSystem(
            prepared.topology,
            nonbondedMethod=app.NoCutoff,
            constraints=None,
            rigidWater=False,
            removeCMMotion=False,
        )
        if solvent == "obc2":
            build_native_obc2(system, prepared.topology)
        oracle = cls(prepared.topology, system, **oracle_kwargs)
        oracle.positions = prepared.positions.clone()
        oracle.modeller = prepared.modeller
        oracle.preparation = prepared
        oracle.solvent = solvent
        return oracle

    @classmethod
    def from_cluster_xml(
        cls,
        xml_path: Union[str, os.PathLike],
        types: Sequence[str],
        *,
        units: Units = REDUCED_UNITS,
        **oracle_kwargs,
    ) -> "OpenMMOracle":
        """Build an oracle for a cluster of unbonded atoms from a force-field XML.

        The topology has one chain and one single-atom residue per atom, the
        residue named after the atom type (the XMLs in ``forcefields/`` define a
        one-atom residue template per type). The System uses NoCutoff and no
        exclusions. The shipped XMLs use sigma = 1 nm and epsilon = 1 kJ/mol,
        so reduced units map onto OpenMM's with scale 1 (``length_scale`` and
        ``energy_scale`` may be passed for other XMLs).

        Args:
            xml_path: Force-field XML, a path or a name in this package's
                ``forcefields/`` folder (e.g. ``"lj_reduced.xml"``).
            types: Residue/atom type name per atom (e.g. ``["LJ"] * 13`` or
                ``["P", "M", ...]``).
            units: Units of the oracle (reduced by default).
            **oracle_kwargs: Passed to :class:`OpenMMOracle`.

        Returns:
            The oracle (``.topology`` set, ``.positions`` None).

        Raises:
            OracleError: file missing, fewer than one atom, or a type with no
                template in the XML (naming the type and the known ones).
        """
        from openmm import app

        from ..data import data_path

        path = Path(xml_path)
        if not path.exists():
            try:
                path = data_path("forcefields", str(xml_path))
            except FileNotFoundError:
                raise OracleError(
                    f"cluster force field {xml_path} not found (neither as a path nor in the package's forcefields/)"
                ) from None
        types = [str(t) for t in types]
        if len(types) < 1:
            raise OracleError("a cluster needs at least one atom type")
        elements = _cluster_templates(path)
        unknown = sorted({t for t in types if t not in elements})
        if unknown:
            raise OracleError(
                f"{path}: no one-atom residue template for type(s) {unknown}; known types: {sorted(elements)}"
            )
        ff = app.ForceField(str(path))
        topology = app.Topology()
        chain = topology.addChain("A")
        for i, t in enumerate(types):
            residue = topology.addResidue(t, chain, id=str(i + 1))
            topology.addAtom(t, elements[t], residue)
        system = ff.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None, removeCMMotion=False)
        oracle = cls(topology, system, units=units, **oracle_kwargs)
        oracle.cluster_types = types
        oracle.forcefield_path = path
        return oracle


__all__ = [
    "OBC2_SOLUTE_DIELECTRIC",
    "OBC2_SOLVENT_DIELECTRIC",
    "PLATFORM_ORDER",
    "SOLVENTS",
    "OpenMMOracle",
    "available_platforms",
    "pool_warning",
    "build_native_obc2",
]
