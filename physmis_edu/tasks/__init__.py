"""Tasks: trajectory generators with a known control and its recovery (Chapters 1, 2, 4, 6)."""

from .base import Prior, Recovery, Task
from .synthetic import LogisticMap, lyapunov_exponent

__all__ = ["Prior", "Recovery", "Task", "LogisticMap", "lyapunov_exponent"]

from .maze import MazeDataset, MazeLayout, MazeTask, maze_layout
from .pendulum import DoublePendulum

__all__ += ["MazeDataset", "MazeLayout", "MazeTask", "maze_layout", "DoublePendulum"]
from .synthetic import DampedOscillator, Sinusoid
from .toy import CurveToy, InverseMap1D

__all__ += ["Sinusoid", "DampedOscillator", "InverseMap1D", "CurveToy"]
