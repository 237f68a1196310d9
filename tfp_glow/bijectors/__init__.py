"""Glow's layers as `tfp.bijectors.Bijector`s.

TFP's convention holds throughout: `forward` is the sampling direction
(latent z -> image x); the paper's f (x -> z) is `inverse`.
"""

from tfp_glow.bijectors.active_channels import ActiveChannels
from tfp_glow.bijectors.actnorm import ActNorm
from tfp_glow.bijectors.additive_coupling import AdditiveCoupling
from tfp_glow.bijectors.affine_coupling import AffineCoupling
from tfp_glow.bijectors.chain import Chain
from tfp_glow.bijectors.channel_permutation import ChannelPermutation
from tfp_glow.bijectors.channel_reverse import ChannelReverse
from tfp_glow.bijectors.channel_shuffle import ChannelShuffle
from tfp_glow.bijectors.initialize import data_init
from tfp_glow.bijectors.invertible_conv1x1 import InvertibleConv1x1
from tfp_glow.bijectors.recompute import Recompute
from tfp_glow.bijectors.split import Split
from tfp_glow.bijectors.spline_coupling import SplineCoupling
from tfp_glow.bijectors.squeeze import Squeeze
from tfp_glow.bijectors.temperature import Temperature
from tfp_glow.bijectors.top_prior import TopPrior

__all__ = [
    'ActiveChannels', 'ActNorm', 'AdditiveCoupling', 'AffineCoupling', 'Chain',
    'ChannelPermutation', 'ChannelReverse', 'ChannelShuffle', 'data_init',
    'InvertibleConv1x1', 'Recompute', 'SplineCoupling', 'Split', 'Squeeze',
    'Temperature', 'TopPrior',
]
