"""The interface every generative model in the book shares (introduced in Chapter 5).

A model is built with its hyper-parameters, ``fit`` on trajectories ``(n, L, d)``
and ``sample``-d from, in the style of scikit-learn::

    model = DiffusionMLP.for_profile("ci")
    model.fit(x)                 # x: float array (n, L, d); optional cond: (n,)
    samples = model.sample(1000) # float32 numpy (1000, L, d)
    model.save("mlp.pt"); same = DiffusionMLP.load("mlp.pt")

This file holds what the four model classes share: per-channel normalisation,
the training loop (one tensor on the device, no DataLoader), the progress bar,
the loss history, seeding, input checks and save/load.
A subclass only says how to build its network, what its loss is, and how it
generates normalised trajectories.

Errors: bad input raises ``ValueError``; sampling or saving before ``fit`` raises
:class:`NotFittedError`, which is both a ``ValueError`` and a ``RuntimeError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import nn

from .._io import write_atomic
from .._validation import (as_rng, check_nonnegative, check_positive, check_positive_int,
                           check_seed, check_trajectories, check_values)
from ..runtime import resolve_device, resolve_profile

_REGISTRY: dict[str, type["GenerativeModel"]] = {}
_FORMAT = 2  # 2: a SHA-256 checksum of the tensors; format 1 files (no checksum) still load


class _CheckpointError(Exception):
    """Why a file is not an intact checkpoint;
    ``GenerativeModel.load`` wraps it in a ValueError.
    """


def _checksum(state: dict, *tensors) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a state dict's tensors and ``tensors``."""
    digest = hashlib.sha256()
    items = sorted(state.items()) + [(f"extra{i}", t) for i, t in enumerate(tensors)]
    for name, t in items:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"entry {name!r} is a {type(t).__name__}, not a tensor")
        t = t.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class NotFittedError(ValueError, RuntimeError):
    """Raised when a model is sampled or saved before ``fit`` (Chapter 5)."""


def _progress_enabled(progress: bool | None) -> bool | None:
    """``True``/``False`` as asked; ``None`` (auto) is off under ``CI`` or ``PHYSMIS_PROGRESS=0``.

    Otherwise tqdm decides: a console bar only when stderr is a terminal; in a Jupyter kernel
    ``tqdm.auto`` always shows its widget, so book builds should set ``PHYSMIS_PROGRESS=0``.
    """
    if progress is not None:
        return bool(progress)
    for var in ("PHYSMIS_PROGRESS", "CI"):
        value = os.environ.get(var)
        if value is not None and value.strip():
            on = value.strip().lower() not in ("0", "false", "no")
            return on if var == "PHYSMIS_PROGRESS" else (False if on else None)
    return None


def _warmup_cosine(step: int, steps: int) -> float:
    """Learning-rate factor: linear warm-up over the first 10% (at most 100 steps),
    then cosine from 1 to 0.1.
    """
    warmup = max(1, min(100, steps // 10))
    return min(1.0, (step + 1) / warmup) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(step, steps) / steps)))


@dataclass(eq=False, kw_only=True)
class GenerativeModel:
    """Base class of the book's generative models (Chapter 5).

    Parameters shared by every model
    --------------------------------
    train_steps : int
        Optimiser steps in ``fit``.
    batch_size : int
        Trajectories per step, drawn with replacement.
    lr : float
        Peak learning rate of Adam; it decays to a tenth along a cosine.
    grad_clip : float
        Gradient-norm clip (0: none).
    sample_batch_size : int
        Trajectories generated at once in ``sample`` (bounds memory).
    seed : int
        Seeds weights, batches and training noise; ``sample`` draws its default
        randomness from a generator seeded with it too.
    device : str or None
        ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``None``
        (see :func:`physmis_edu.runtime.resolve_device`).
    progress : bool or None
        Progress bar during ``fit``; ``None`` shows it only in an interactive session.

    Fitted attributes: ``loss_history`` (one float per step), ``shape_`` ``(L, d)``,
    ``conditional_``, ``x_mean_``/``x_std_`` (per channel), ``net_`` (the torch module).
    """

    train_steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    grad_clip: float = 1.0
    sample_batch_size: int = 4096
    seed: int = 0
    device: str | None = field(default=None, repr=False)
    progress: bool | None = field(default=None, repr=False)

    name = "model"
    supports_inpaint = False
    # A short name for tables, and the seconds of a book-grade run of the store relative to
    # DiffusionMLP's (1 CPU thread, logistic map, L = 16; benchmarks/README.md): how the panel
    # schedules slow classes first and what a cheap proxy saves.
    short_name = "model"
    relative_cost = 1.0
    # Hyper-parameters per run profile; subclasses fill this in.
    PROFILE_CONFIGS = {}
    _RUNTIME_FIELDS = ("device", "progress")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __post_init__(self):
        self.train_steps = check_positive_int(self.train_steps, "train_steps")
        self.batch_size = check_positive_int(self.batch_size, "batch_size")
        self.sample_batch_size = check_positive_int(self.sample_batch_size, "sample_batch_size")
        self.lr = check_positive(self.lr, "lr")
        self.grad_clip = check_nonnegative(self.grad_clip, "grad_clip")
        self.seed = check_seed(self.seed, "seed")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True, False or None; got {self.progress!r}")
        self.device_ = resolve_device(self.device)
        self.net_: nn.Module | None = None
        self.loss_history: list[float] = []
        self._sample_rng = np.random.default_rng([self.seed, 1])

    # -- configuration -------------------------------------------------------
    def get_config(self) -> dict:
        """Hyper-parameters as a JSON-able dict
        (what ``save`` stores and ``load`` rebuilds from).
        """
        config = {}
        for f in fields(self):
            if f.name in self._RUNTIME_FIELDS:
                continue
            value = getattr(self, f.name)
            config[f.name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def for_profile(cls, profile: str | None = None, **overrides) -> "GenerativeModel":
        """A model sized for a run profile (``'ci'``, ``'cpu'``, ``'gpu'``; ``None``:
        the current one), with overrides.
        """
        return cls(**{**default_config(cls.__name__, profile), **overrides})

    # -- subclass hooks --------------------------------------------------------
    def _build(self, length: int, channels: int) -> nn.Module:
        """The network for trajectories of shape ``(L, d)``, on the CPU, freshly initialised."""
        raise NotImplementedError(self._abstract("_build"))

    def _prepare(self, x: torch.Tensor) -> None:
        """Set data-dependent buffers of ``net_`` from the normalised training set
        (default: none).
        """

    def _loss(self, x: torch.Tensor, cond: torch.Tensor | None,
              gen: torch.Generator) -> torch.Tensor:
        """Scalar training loss on a normalised batch ``(b, L, d)``."""
        raise NotImplementedError(self._abstract("_loss"))

    def _generate(self, n: int, cond, pin, gen: torch.Generator) -> torch.Tensor:
        """``n`` normalised trajectories;
        ``pin`` is ``None`` or ``(mask, values)`` normalised tensors.
        """
        raise NotImplementedError(self._abstract("_generate"))

    def _abstract(self, hook: str) -> str:
        classes = sorted(n for n in _REGISTRY if n != "GenerativeModel")
        return (f"{type(self).__name__} does not implement {hook}: GenerativeModel is the shared "
                f"base class; use one of the model classes {classes}")

    # -- normalisation -----------------------------------------------------------
    def normalise(self, x) -> np.ndarray:
        """Per-channel standardisation learned in ``fit``: ``(x - mean) / std``."""
        self._check_fitted()
        return (self._check_channels(x, "x") - self.x_mean_) / self.x_std_

    def denormalise(self, z) -> np.ndarray:
        """Inverse of :meth:`normalise`."""
        self._check_fitted()
        return self._check_channels(z, "z") * self.x_std_ + self.x_mean_

    def _check_channels(self, x, name: str) -> np.ndarray:
        """``x`` as float64 with a last axis of the fitted channel count (no broadcasting)."""
        if np.iscomplexobj(x):
            raise ValueError(f"{name} must be real; got complex values")
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a numeric array (..., d); got {type(x).__name__}") \
                from err
        channels = self.x_mean_.shape[-1]
        if arr.ndim == 0 or arr.shape[-1] != channels:
            raise ValueError(f"{name} must have the fitted d={channels} channels on its last "
                             f"axis; got shape {arr.shape}")
        return arr

    # -- training ------------------------------------------------------------------
    def fit(self, x, cond=None, callback=None, callback_steps=()) -> "GenerativeModel":
        """Train on trajectories ``x`` of shape ``(n, L, d)``;
        ``cond`` (n,) makes the model conditional.

        Introduced in Chapter 5. Returns ``self``. Refitting starts from fresh weights.
        ``callback(model, step)`` is called after each optimiser step listed in ``callback_steps``
        (1-based, at most ``train_steps``), with the network in eval mode, e.g. to sample and score
        checkpoints along one training run; it must not change the model's parameters.
        """
        x = check_trajectories(x, "x")
        callback_steps = self._check_callback(callback, callback_steps)
        n, length, channels = x.shape
        cond = self._check_cond(cond, n, "cond")
        self.shape_ = (length, channels)
        self.conditional_ = cond is not None
        self.x_mean_ = x.mean(axis=(0, 1))
        std = x.std(axis=(0, 1))
        # A constant channel (e.g. a pinned start) keeps scale 1 rather than dividing by zero.
        self.x_std_ = np.where(std > 1e-8, std, 1.0)
        if cond is not None:
            self.cond_mean_ = float(cond.mean())
            self.cond_std_ = float(cond.std()) if cond.std() > 1e-8 else 1.0
        else:
            self.cond_mean_, self.cond_std_ = 0.0, 1.0

        dev = self.device_
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = self._build(length, channels)
        self.net_ = net.to(dev)
        data = torch.as_tensor(self.normalise(x), dtype=torch.float32, device=dev)
        cdata = (None if cond is None
                 else torch.as_tensor(self._normalise_cond(cond), dtype=torch.float32, device=dev))
        self._prepare(data)

        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        steps = self.train_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: _warmup_cosine(step, steps))
        amp, scaler = self._amp()
        gen = torch.Generator(device=dev)
        gen.manual_seed(self.seed)
        losses = []

        from tqdm.auto import tqdm

        show = _progress_enabled(self.progress)
        bar = tqdm(range(steps), desc=type(self).__name__, leave=False,
                   disable=None if show is None else not show)
        self.net_.train()
        for step in bar:
            idx = torch.randint(n, (self.batch_size,), generator=gen, device=dev)
            with amp:
                loss = self._loss(data[idx], None if cdata is None else cdata[idx], gen)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if self.grad_clip > 0:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(self.net_.parameters(), self.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(loss.detach().float())
            if not bar.disable and (step % 50 == 0 or step == steps - 1):
                bar.set_postfix(loss=f"{losses[-1].item():.4f}")
            if step + 1 in callback_steps:
                self.loss_history = torch.stack(losses).cpu().tolist()
                self.net_.eval()
                callback(self, step + 1)
                self.net_.train()
        bar.close()
        self.loss_history = torch.stack(losses).cpu().tolist()
        self.net_.eval()
        self._sample_rng = np.random.default_rng([self.seed, 1])
        return self

    def _check_callback(self, callback, callback_steps) -> frozenset:
        steps = [check_positive_int(s, "callback_steps") for s in callback_steps]
        bad = [s for s in steps if s > self.train_steps]
        if bad:
            raise ValueError(f"callback_steps must lie in [1, train_steps={self.train_steps}]; "
                             f"got {bad}")
        if steps and not callable(callback):
            raise ValueError(f"callback must be callable when callback_steps is given; "
                             f"got {callback!r}")
        return frozenset(steps)

    def _amp(self):
        """Mixed precision on CUDA only (bf16 when supported,
        else fp16 with loss scaling); plain fp32 on the CPU.
        """
        if self.device_.type != "cuda":
            return contextlib.nullcontext(), torch.amp.GradScaler("cpu", enabled=False)
        bf16 = torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if bf16 else torch.float16
        return torch.autocast("cuda", dtype=dtype), torch.amp.GradScaler("cuda", enabled=not bf16)

    # -- sampling --------------------------------------------------------------------
    def sample(self, n: int, cond=None, inpaint=None, rng=None) -> np.ndarray:
        """Draw ``n`` trajectories: float32 numpy ``(n, L, d)`` in data units.

        Introduced in Chapter 5.
        ``cond``: controls ``(n,)`` (or one scalar for all),
        required exactly when the model was fit with ``cond``.
        ``inpaint``: ``(mask, values)`` broadcastable to ``(n, L, d)``; where ``mask`` is true the
        output equals ``values`` exactly (only models with ``supports_inpaint``).
        ``rng``: ``None`` (the model's own generator, seeded by ``seed``),
        an int seed or a numpy ``Generator``.
        Sampling runs in float32 even on CUDA:
        mixed precision would add its own error to the trajectories.
        """
        self._check_fitted()
        n = check_positive_int(n, "n")
        cond = self._check_sample_cond(cond, n)
        pin = self._check_inpaint(inpaint, n)
        seed = int(as_rng(self._sample_rng if rng is None else rng).integers(2**63))
        dev = self.device_
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        chunks = []
        self.net_.eval()
        with torch.inference_mode():
            for start in range(0, n, self.sample_batch_size):
                stop = min(n, start + self.sample_batch_size)
                c = None if cond is None else torch.as_tensor(
                    self._normalise_cond(cond[start:stop]), dtype=torch.float32, device=dev)
                p = None
                if pin is not None:
                    mask, values = pin[0][start:stop], pin[1][start:stop]
                    p = (torch.as_tensor(mask.copy(), device=dev),
                         torch.as_tensor(np.where(mask, self.normalise(values), 0.0),
                                         dtype=torch.float32, device=dev))
                z = self._generate(stop - start, c, p, gen)
                chunks.append(z.float().cpu().numpy())
        out = self.denormalise(np.concatenate(chunks)).astype(np.float32)
        if pin is not None:
            # Exactly the pinned numbers, not their round trip through the normalisation.
            out[pin[0]] = pin[1][pin[0]].astype(np.float32)
        return out

    # -- persistence ---------------------------------------------------------------------
    def save(self, path) -> None:
        """Write config, normalisation and ``state_dict``
        (tensors and plain types only) to ``path``.

        Introduced in Chapter 5. Read back with :meth:`load`,
        which uses ``torch.load(weights_only=True)``.
        The file is written to a temporary file in the same folder and then renamed over ``path``,
        so an interrupted save leaves any previous checkpoint intact. It records a SHA-256 checksum
        of its tensors, which :meth:`load` verifies.
        """
        self._check_fitted()
        state = {k: v.detach().cpu() for k, v in self.net_.state_dict().items()}
        x_mean = torch.as_tensor(self.x_mean_, dtype=torch.float64)
        x_std = torch.as_tensor(self.x_std_, dtype=torch.float64)
        blob = {
            "format": _FORMAT,
            "model": type(self).__name__,
            "config": json.dumps(self.get_config()),
            "shape": list(self.shape_),
            "conditional": bool(self.conditional_),
            "x_mean": x_mean,
            "x_std": x_std,
            "cond_norm": [self.cond_mean_, self.cond_std_],
            "loss_history": list(self.loss_history),
            "state_dict": state,
            "checksum": _checksum(state, x_mean, x_std),
        }
        write_atomic(path, lambda handle: torch.save(blob, handle))

    @classmethod
    def load(cls, path, device=None, progress: bool | None = None) -> "GenerativeModel":
        """Rebuild a model written by :meth:`save` (on ``device``; ``None`` resolves as usual).

        Introduced in Chapter 5. Called on :class:`GenerativeModel` it returns
        whichever class was saved.
        Any file that is not an intact checkpoint (empty, truncated, random bytes, another format,
        edited tensors or shapes) raises one ``ValueError`` that names the file and what is wrong;
        a missing file raises ``FileNotFoundError``.
        """
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file {os.fspath(path)!r} does not exist")
        try:
            return cls._load(path, device, progress)
        except _CheckpointError as err:
            raise ValueError(f"cannot load model file {os.fspath(path)!r}: {err}") from None

    @classmethod
    def _load(cls, path, device, progress) -> "GenerativeModel":
        if os.path.getsize(path) == 0:
            raise _CheckpointError("the file is empty")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torch's messages can advise weights_only=False, which is unsafe
            raise _CheckpointError("it is not a readable torch checkpoint (truncated, corrupted, "
                                   "or another format such as .npy); load only files written "
                                   "by GenerativeModel.save") from None
        known = isinstance(blob, dict) and "model" in blob and blob.get("format") in (1, _FORMAT)
        if not known:
            raise _CheckpointError(f"it is not a physmis_edu model file (format {_FORMAT})")
        saved = _REGISTRY.get(blob["model"])
        if saved is None:
            raise _CheckpointError(f"it holds unknown model class {blob['model']!r}")
        if cls is not GenerativeModel and saved is not cls:
            raise _CheckpointError(f"it holds a {blob['model']}, not a {cls.__name__}")
        try:
            state, x_mean, x_std = blob["state_dict"], blob["x_mean"], blob["x_std"]
            if blob["format"] >= 2 and blob["checksum"] != _checksum(state, x_mean, x_std):
                raise _CheckpointError("its tensors do not match their recorded SHA-256 checksum "
                                       "(the file was altered or corrupted)")
            model = saved(**json.loads(blob["config"]), device=device, progress=progress)
            length, channels = blob["shape"]
            model.shape_ = (int(length), int(channels))
            model.conditional_ = bool(blob["conditional"])
            model.x_mean_ = x_mean.numpy()
            model.x_std_ = x_std.numpy()
            model.cond_mean_, model.cond_std_ = (float(v) for v in blob["cond_norm"])
            model.loss_history = list(blob["loss_history"])
            net = model._build(*model.shape_)
            net.load_state_dict(state)
        except _CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            first = str(err).splitlines()[0][:200] if str(err) else ""
            reason = f"{type(err).__name__}: {first}" if first else type(err).__name__
            raise _CheckpointError(f"its contents are inconsistent ({reason})") from None
        model.net_ = net.to(model.device_).eval()
        return model

    # -- sizes -----------------------------------------------------------------------------
    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters (after ``fit`` or ``load``)."""
        self._check_fitted()
        return sum(p.numel() for p in self.net_.parameters() if p.requires_grad)

    # -- checks ------------------------------------------------------------------------------
    def _check_fitted(self):
        if self.net_ is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; "
                                 "call fit(x) before sample/save")

    def _normalise_cond(self, cond: np.ndarray) -> np.ndarray:
        return (cond - self.cond_mean_) / self.cond_std_

    @staticmethod
    def _check_cond(cond, n: int, name: str) -> np.ndarray | None:
        if cond is None:
            return None
        c = check_values(cond, name)
        if c.shape != (n,):
            raise ValueError(f"{name} must have shape (n,) = ({n},), one control per trajectory; "
                             f"got {c.shape}")
        return c

    def _check_sample_cond(self, cond, n: int) -> np.ndarray | None:
        if not self.conditional_:
            if cond is not None:
                raise ValueError("cond was given but this model was fit without cond "
                                 "(unconditional)")
            return None
        if cond is None:
            raise ValueError("this model was fit with cond; pass cond (n,) or a scalar to sample")
        if np.ndim(cond) == 0:
            cond = np.full(n, cond, dtype=np.float64)
        return self._check_cond(cond, n, "cond")

    def _check_inpaint(self, inpaint, n: int):
        if inpaint is None:
            return None
        if not self.supports_inpaint:
            raise ValueError(f"{type(self).__name__} does not support inpaint; "
                             "use a diffusion model or the Transformer")
        if not (isinstance(inpaint, (tuple, list)) and len(inpaint) == 2):
            raise ValueError("inpaint must be a pair (mask, values), "
                             "each broadcastable to (n, L, d)")
        shape = (n, *self.shape_)
        try:
            mask = np.broadcast_to(np.asarray(inpaint[0]), shape)
            values = np.broadcast_to(np.asarray(inpaint[1], dtype=np.float64), shape)
        except ValueError as err:
            raise ValueError(
                f"inpaint mask and values must broadcast to (n, L, d) = {shape}") from err
        if mask.dtype != bool:
            raise ValueError(f"inpaint mask must be boolean; got dtype {mask.dtype}")
        if not np.isfinite(values[mask]).all():
            raise ValueError("inpaint values must be finite wherever the mask is true")
        return np.ascontiguousarray(mask), np.ascontiguousarray(values)


def default_config(model_name: str, profile: str | None = None) -> dict:
    """Hyper-parameters of a model class (by class name) for a run profile (Chapter 5).

    ``profile`` is ``'ci'``, ``'cpu'`` or ``'gpu'``;
    ``None`` uses :func:`physmis_edu.runtime.resolve_profile`.
    """
    if model_name not in _REGISTRY:
        raise ValueError(f"model_name must be one of {sorted(_REGISTRY)}; got {model_name!r}")
    profile = resolve_profile(profile)  # raises ValueError for an unknown profile
    return dict(_REGISTRY[model_name].PROFILE_CONFIGS[profile])


def model_classes() -> dict[str, type[GenerativeModel]]:
    """Every registered model class by name (Chapter 5)."""
    return dict(_REGISTRY)


def load(path, device=None, progress: bool | None = None) -> GenerativeModel:
    """Load any model written by ``save`` (Chapter 5)."""
    return GenerativeModel.load(path, device=device, progress=progress)
