"""Files of the store of trained runs: hashes, atomic writes, the manifest and loading (Chapter 1).

Every run is a compressed ``NAME.npz`` (its samples), a ``NAME.json`` (how it was made and what
it measured) and, for some runs, a ``NAME.pt`` checkpoint. ``manifest.json`` records the sha256 of
every file; :func:`load` verifies them, so a missing, truncated or altered file is reported by
name instead of silently changing what a chapter shows.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .._io import write_atomic
from . import catalog

MANIFEST = "manifest.json"
FORMAT = 1
DATA_DIR = Path(__file__).resolve().parent / "data"


class ZooFileError(ValueError):
    """A file of the store is missing, truncated or altered (Chapter 1)."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_array(x) -> str:
    x = np.ascontiguousarray(x)
    return hashlib.sha256(f"{x.dtype.str}{x.shape}".encode() + x.tobytes()).hexdigest()


def dequantise(codes, offset, scale) -> np.ndarray:
    """Samples stored as 16-bit fixed point back to float32 (see ``build.quantise``)."""
    return (np.asarray(codes, dtype=np.float64) * scale + offset).astype(np.float32)


def write_json(path, obj) -> None:
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"
    write_atomic(path, lambda handle: handle.write(text.encode()))


def read_manifest(root) -> dict:
    path = Path(root) / MANIFEST
    if not path.exists():
        return {"format": FORMAT, "runs": {}}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ZooFileError(f"{path} is not a readable store manifest: {err}") from err
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("runs"), dict):
        raise ZooFileError(f"{path} is not a store manifest of format {FORMAT}")
    return manifest


def root_dir(root=None) -> Path:
    """The store's folder: ``root`` if given, else ``PHYSMIS_ZOO_DIR``, else the package's data."""
    if root is not None:
        return Path(root)
    env = os.environ.get("PHYSMIS_ZOO_DIR")
    if env is not None and env.strip():
        path = Path(env)
        if not path.is_dir():
            raise ValueError(f"PHYSMIS_ZOO_DIR must name an existing folder; got {env!r}")
        return path
    return DATA_DIR


@dataclass
class Run:
    """One trained run of the store, as loaded by :func:`load` (introduced in Chapter 1).

    ``samples`` (float32, ``(n, L, d)``), ``meta`` (how it was made), ``checks`` (the c-free
    sample checks against fresh true data), ``curve`` (the same checks and the drift at
    checkpoints along training), ``task``, ``train`` and ``fresh`` (regenerated bit for bit from
    recorded seeds and verified against recorded hashes) and :meth:`model` where a checkpoint
    ships.
    """

    name: str
    spec: catalog.RunSpec
    meta: dict
    samples: np.ndarray
    root: Path

    @property
    def checks(self) -> dict:
        return self.meta["checks"]

    @property
    def curve(self) -> list[dict]:
        return self.meta["curve"]

    @cached_property
    def task(self):
        return catalog.make_task(self.spec.task)

    def _regenerate(self, which: str):
        x, c = (catalog.training_data if which == "train" else catalog.fresh_data)(self.spec)
        if sha256_array(x) != self.meta[f"{which}_sha256"]:
            raise ZooFileError(
                f"the regenerated {which} data of run {self.name} differ from those it was "
                "trained on (a changed task or numpy random stream); rebuild the run with "
                f"python -m physmis_edu.zoo build --only {self.name}")
        return x, c

    @cached_property
    def _train(self):
        return self._regenerate("train")

    @cached_property
    def _fresh(self):
        return self._regenerate("fresh")

    @property
    def train(self) -> np.ndarray:
        """The training trajectories (float32), regenerated from the recorded data stream."""
        return self._train[0]

    @property
    def fresh(self) -> np.ndarray:
        """Fresh true trajectories, never trained on: the reference of the sample checks."""
        return self._fresh[0]

    def requested(self, requests: str = "prior") -> tuple[np.ndarray, np.ndarray]:
        """A conditional run's requested controls and the samples asked for them (Chapter 9).

        ``requests='prior'``: the controls drawn from the prior, with :attr:`samples`.
        ``requests='joint'``: a conditional planner's second set, each plan asked for the
        distance of the fresh trajectory whose ends pin it (requests drawn jointly with the
        ends). Returns ``(requested, samples)``.
        """
        if requests not in ("prior", "joint"):
            raise ValueError(f"requests must be 'prior' or 'joint'; got {requests!r}")
        if not self.spec.conditional:
            raise ValueError(f"run {self.name} is not conditional; it has no requests")
        with np.load(self.root / f"{self.name}.npz") as blob:
            if requests == "prior":
                return blob["requested"], self.samples
            if "joint_codes" not in blob:
                raise ValueError(f"run {self.name} has no joint requests; only a conditional "
                                 "planner (plan_endpoints=True) is sampled with them")
            return blob["joint_requested"], dequantise(blob["joint_codes"],
                                                       blob["joint_offset"],
                                                       blob["joint_scale"])

    def model(self, device=None):
        """The trained model, where this run ships a checkpoint (``state_dict``, weights only)."""
        path = self.root / f"{self.name}.pt"
        if not self.spec.checkpoint:
            raise ValueError(f"run {self.name} ships no checkpoint; runs with one: "
                             f"{[n for n, s in catalog.SPECS.items() if s.checkpoint]}")
        from ..models import load as load_model

        return load_model(path, device=device, progress=False)

    def __repr__(self) -> str:
        return (f"Run({self.name}: {self.samples.shape[0]} samples, "
                f"{self.meta['spec']['config']['train_steps']} steps)")


def entries(root=None) -> list[str]:
    """Names of the runs in the store, ``task.model[-variant].sSEED`` (Chapter 1)."""
    return sorted(read_manifest(root_dir(root))["runs"])


def _verify(root: Path, name: str, manifest: dict) -> None:
    for file, digest in manifest["runs"][name]["files"].items():
        path = root / file
        if not path.exists():
            raise ZooFileError(f"store file {path} of run {name} is missing; "
                               f"reinstall physmis_edu or rebuild it: "
                               f"python -m physmis_edu.zoo build --only {name}")
        if sha256_file(path) != digest:
            raise ZooFileError(f"store file {path} of run {name} is truncated or altered (its "
                               "sha256 differs from the manifest); reinstall physmis_edu or "
                               f"rebuild it: python -m physmis_edu.zoo build --only {name}")


def load(task: str, model: str, seed: int = 0, variant: str = "", root=None) -> Run:
    """A trained run of the store, every file verified against its recorded sha256 (Chapter 1).

    ``task`` is a store task key (e.g. ``'logistic-chaotic'``), ``model`` a model class name,
    ``variant`` names a non-default run (e.g. ``'data40k'``). See :func:`entries`.
    """
    name = catalog.RunSpec(task, model, seed, {}, variant=variant).name
    root = root_dir(root)
    manifest = read_manifest(root)
    if name not in manifest["runs"]:
        raise ValueError(f"no run {name!r} in the store at {root}; "
                         f"available: {sorted(manifest['runs'])}")
    _verify(root, name, manifest)
    meta = json.loads((root / f"{name}.json").read_text())
    with np.load(root / f"{name}.npz") as blob:
        if "codes" in blob:
            samples = dequantise(blob["codes"], blob["offset"], blob["scale"])
        else:
            samples = blob["samples"].astype(np.float32)
    spec_dict = dict(meta["spec"])
    spec_dict["milestones"] = tuple(spec_dict["milestones"])
    spec = catalog.RunSpec(**spec_dict)
    return Run(name=name, spec=spec, meta=meta, samples=samples, root=root)
