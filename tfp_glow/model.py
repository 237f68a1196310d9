"""`tfp_glow.model`, v0.1's path of `tfp_glow.training.model`; kept for a release."""

from tfp_glow.training.model import GlowModel
from tfp_glow.training.optimizers import LinearWarmup
from tfp_glow.training.optimizers import default_optimizer

__all__ = ['GlowModel', 'LinearWarmup', 'default_optimizer']
