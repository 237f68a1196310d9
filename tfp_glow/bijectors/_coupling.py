"""What the coupling layers share: the channel split and the conditioner."""

from typing import Optional

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import nn
from tfp_glow.bijectors import _base
from tfp_glow.bijectors import _shapes

__all__ = ['Coupling']


class Coupling(_base.GlowBijector):
  """Base of layers that transform the second channel half given the first.

  The input `[..., H, W, C]` splits into `x1 = x[..., :C // 2]`, which passes
  through unchanged, and `x2 = x[..., C // 2:]`, which is transformed with
  parameters `h = net(x1)`. `net` is built once, by
  `conditioner_fn(C // 2, out_channels, dtype=dtype, seed=seed)`, and kept as an
  attribute so that `tf.Module` tracks its variables.
  """

  def __init__(self, channels: int, conditioner_fn: nn.ConditionerFn,
               params_per_channel: int, *, is_constant_jacobian: bool,
               seed: Optional[int], dtype: tf.DType, validate_args: bool,
               parameters: dict, name: str):
    channels = _validation.positive_int('channels', channels, minimum=2)
    if not callable(conditioner_fn):
      raise TypeError('`conditioner_fn` must be callable as '
                      'conditioner_fn(in_channels, out_channels, dtype=, seed=); '
                      f'got {conditioner_fn!r}.')
    dtype = _validation.float_dtype(dtype)
    self._channels = channels
    self._split = channels // 2
    out_channels = params_per_channel * (channels - self._split)
    with tf.name_scope(name) as name:
      self._net = conditioner_fn(self._split, out_channels, dtype=dtype,
                                 seed=np.random.default_rng(seed).integers(2**31))
      super().__init__(
          forward_min_event_ndims=3, is_constant_jacobian=is_constant_jacobian,
          validate_args=validate_args, dtype=dtype, parameters=parameters,
          name=name)

  @property
  def conditioner(self) -> nn.Conditioner:
    """The network mapping the first channel half to the parameters."""
    return self._net

  def _halves(self, x):
    _shapes.check_channels(type(self).__name__, x, self._channels)
    # tf.split, not slicing: its gradient is one concat, not two padded adds.
    return tf.split(x, [self._split, self._channels - self._split], axis=-1)

  def _params(self, x1):
    return _shapes.apply_flat(self._net, x1)

  def _param_pairs(self, x1):
    """`(h[..., 0::2], h[..., 1::2])` of `h = net(x1)`: openai/glow's layout."""
    if hasattr(self._net, 'split_call'):  # Without strided slices: faster.
      return _shapes.apply_flat(self._net.split_call, x1)
    h = self._params(x1)
    return h[..., 0::2], h[..., 1::2]

  def data_init(self, x: tf.Tensor) -> tf.Tensor:
    """Runs the conditioner's data init on `x`'s first half; returns `inverse(x)`."""
    if hasattr(self._net, 'data_init'):
      x1, _ = self._halves(x)
      _shapes.apply_flat(self._net.data_init, x1)
    return self.inverse(x)

  def _forward(self, z):
    return self._augmented_forward(z)[0]

  def _inverse(self, x):
    return self._augmented_inverse(x)[0]
