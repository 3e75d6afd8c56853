"""Mitigations of physical misgeneralization, measured (Chapters 9 and 10).

- :mod:`~physmis_edu.mitigations.reweighting`: training-set weights from a kernel's predicted
  recovery (``p / q_hat``, and Richardson-Lucy on the kernel's transition matrix), and the
  out-of-range floor no reweighting can remove;
- :mod:`~physmis_edu.mitigations.conditioning`: recovered against requested controls of a
  conditional model;
- :mod:`~physmis_edu.mitigations.coordinates`: invertible representations ``y = Phi(x)`` a model
  trains in, and :class:`Represented`, a model wrapped in one;
- :mod:`~physmis_edu.mitigations.search`: the drift a kernel predicts for each representation,
  before training.

Adding a representation: its class in ``coordinates.py`` and its line in ``REPRESENTATIONS``.
"""

from .conditioning import ConditioningReport, requested_vs_recovered
from .coordinates import (REPRESENTATIONS, ArcLength, Identity, LogisticRatio, PendulumEnergy,
                          Polar, Represented, SpectralScale, TailWarp,
                          TimeScale, Warp, representation_from_dict, representation_to_dict)
from .reweighting import (Reweighting, Transition, iterative_weights, kernel_weights,
                          transition_matrix, weighted_resample)
from .search import (Candidate, ModelCoordinates, calibrate_in_model_coordinates,
                     default_candidates, predicted_drift, rank_agreement, rank_representations)
from .study import STUDY_VARIANTS, VARIANTS, markdown_study, plot_study, study_table, verdict

__all__ = ["ConditioningReport", "requested_vs_recovered",
           "REPRESENTATIONS", "ArcLength", "Identity", "LogisticRatio", "PendulumEnergy", "Polar",
           "Represented", "SpectralScale", "TailWarp", "TimeScale",
           "Warp", "representation_from_dict", "representation_to_dict",
           "Reweighting", "Transition", "iterative_weights", "kernel_weights",
           "transition_matrix", "weighted_resample",
           "Candidate", "ModelCoordinates", "calibrate_in_model_coordinates", "predicted_drift",
           "rank_agreement", "rank_representations", "default_candidates",
           "VARIANTS", "STUDY_VARIANTS", "markdown_study", "plot_study", "study_table", "verdict"]
