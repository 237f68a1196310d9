"""Random channel shuffle (Glow section 3.2 baseline)."""

from typing import Optional

import numpy as np

from tfp_glow import _validation
from tfp_glow.bijectors import channel_permutation

__all__ = ['ChannelShuffle']


class ChannelShuffle(channel_permutation.ChannelPermutation):
  """A random but fixed permutation of the channels, drawn from `seed`.

  The drawn permutation is stored in a non-trainable variable, so a restored
  model uses the saved permutation whatever seed built it.

  Args:
    channels: Python `int`, the number of channels C.
    seed: Python `int` or `None`. Default value: `None`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'channel_shuffle'`.

  Raises:
    TypeError, ValueError: if `channels` is not a positive int.

  #### Examples

  >>> a, b = ChannelShuffle(8, seed=3), ChannelShuffle(8, seed=3)
  >>> bool((a.permutation.numpy() == b.permutation.numpy()).all())
  True
  >>> bool((a.copy().permutation.numpy() == a.permutation.numpy()).all())
  True
  """

  def __init__(self, channels: int, seed: Optional[int] = None,
               validate_args: bool = False, name: str = 'channel_shuffle'):
    parameters = dict(locals())
    channels = _validation.positive_int('channels', channels)
    permutation = np.random.default_rng(seed).permutation(channels)
    super().__init__(permutation, validate_args=validate_args, name=name,
                     parameters=parameters)
