"""Data deviation kernels: what a model class produces in place of a training trajectory.

Introduced in Chapter 2 (:class:`Gaussian`, :class:`Smooth`, :func:`predict_recovered` on the
toy system); the families, calibration, :class:`Empirical` and agreement scores in Chapter 6.
A kernel ``K(x~ | x)`` perturbs training trajectories the way a model class errs; recovering
the control from the perturbed data gives the prediction ``q_hat = M#(K o p_data)`` of the
model's recovered distribution ``q``, before (or without) training. Calibration chooses a
kernel's parameters from statistics that never use the control ``c``.

Modules, dependencies one way (each imports only those listed before it, and ``metrics``):

- :mod:`.neighbours`: nearest-neighbour search between sets of trajectories;
- :mod:`.noise`: :class:`Gaussian`, :class:`Smooth`, :class:`Empirical`;
- :mod:`.families`: :class:`NeighbourBlend`, :class:`ProjectedNoise`, :class:`DenoisedNoise`,
  :class:`Truncation`, :class:`Shrinkage`, :class:`Quantise`, :class:`Compounding`,
  :class:`ProxySamples`;
- :mod:`.base`: the :class:`Kernel` protocol, :func:`with_params`, and :data:`KERNELS`, the one
  registry of kernel classes (adding a family: its class in its file, plus one registry line);
- :mod:`.calibration`: :func:`calibrate` (the one entry point), :func:`rule_residual`;
- :mod:`.predict`: :func:`predict_recovered`, :func:`agreement`, :func:`ef_ceiling`.

Every registered kernel class is exported here under its name.
"""

from .base import KERNELS, Kernel, with_params
from .calibration import Calibration, calibrate, rule_residual
from .neighbours import k_nearest, nearest_neighbours, nn_distances
from .predict import Agreement, agreement, ef_ceiling, predict_recovered

globals().update(KERNELS)

__all__ = [
    *KERNELS, "Kernel", "with_params", "KERNELS",
    "nearest_neighbours", "nn_distances", "k_nearest",
    "Calibration", "calibrate", "rule_residual",
    "predict_recovered", "Agreement", "agreement", "ef_ceiling",
]
