"""tfp_glow: Glow (Kingma & Dhariwal, 2018) as TensorFlow Probability bijectors."""

from tfp_glow import bijectors
from tfp_glow import nn
from tfp_glow.export import export_saved_model
from tfp_glow.glow import Glow
from tfp_glow.model import GlowModel

__version__ = '0.1.0'

__all__ = ['Glow', 'GlowModel', 'bijectors', 'export_saved_model', 'nn',
           '__version__']
