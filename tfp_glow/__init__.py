"""tfp_glow: Glow (Kingma & Dhariwal, 2018) as TensorFlow Probability bijectors."""

from tfp_glow import bijectors
from tfp_glow import nn
from tfp_glow.glow import Glow

__version__ = '0.1.0'

__all__ = ['Glow', 'bijectors', 'nn', '__version__']
