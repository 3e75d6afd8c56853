"""Tasks: trajectory generators with a known control and its recovery (Chapters 1, 2, 4, 6, 12)."""

from .base import Prior, Recovery, Task
from .maze import MazeDataset, MazeLayout, MazeTask, maze_layout
from .pendulum import DoublePendulum
from .speech import SyllableEnvelope
from .synthetic import DampedOscillator, LogisticMap, Sinusoid, lyapunov_exponent
from .toy import CurveToy, InverseMap1D

__all__ = [
    "Prior", "Recovery", "Task", "LogisticMap", "lyapunov_exponent",
    "MazeDataset", "MazeLayout", "MazeTask", "maze_layout", "DoublePendulum",
    "Sinusoid", "DampedOscillator", "InverseMap1D", "CurveToy", "SyllableEnvelope",
]
