"""Generative models of trajectories, one interface for all (introduced in Chapter 5).

``DiffusionUNet``, ``DiffusionMLP``, ``Transformer`` and ``VAE`` share
:class:`GenerativeModel`: ``Model(**hyper_parameters)`` or ``Model.for_profile(profile)``,
then ``fit(x, cond=None)``, ``sample(n, cond=None, inpaint=None, rng=None)``,
``save(path)`` / ``Model.load(path)``.
This is the only part of ``physmis_edu`` that imports torch at module level.
"""

from .base import GenerativeModel, NotFittedError, default_config, load, model_classes
from .diffusion import CosineSchedule, DiffusionMLP, DiffusionUNet
from .transformer import Transformer
from .vae import VAE

MODELS = {"DiffusionUNet": DiffusionUNet, "DiffusionMLP": DiffusionMLP,
          "Transformer": Transformer, "VAE": VAE}

__all__ = ["GenerativeModel", "NotFittedError", "default_config", "load", "model_classes",
           "CosineSchedule", "DiffusionUNet", "DiffusionMLP", "Transformer", "VAE", "MODELS"]
