"""Channel reversal, RealNVP's fixed permutation (Glow section 3.2 baseline)."""

import numpy as np

from tfp_glow import _validation
from tfp_glow.bijectors import channel_permutation

__all__ = ['ChannelReverse']


class ChannelReverse(channel_permutation.ChannelPermutation):
  """Reverses the order of the channels: `z[..., i] = x[..., C - 1 - i]`.

  Args:
    channels: Python `int`, the number of channels C.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'channel_reverse'`.

  Raises:
    TypeError, ValueError: if `channels` is not a positive int.

  #### Examples

  >>> ChannelReverse(4).permutation.numpy()
  array([3, 2, 1, 0], dtype=int32)
  >>> ChannelReverse(4).copy().permutation.numpy()
  array([3, 2, 1, 0], dtype=int32)
  """

  def __init__(self, channels: int, validate_args: bool = False,
               name: str = 'channel_reverse'):
    parameters = dict(locals())
    channels = _validation.positive_int('channels', channels)
    super().__init__(np.arange(channels)[::-1], validate_args=validate_args,
                     name=name, parameters=parameters)
