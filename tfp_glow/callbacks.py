"""`tfp_glow.callbacks`, v0.1's path of `tfp_glow.training.callbacks`; kept for a release."""

from tfp_glow.training.callbacks import SampleGrid
from tfp_glow.training.guard import NonFiniteGuard

__all__ = ['NonFiniteGuard', 'SampleGrid']
