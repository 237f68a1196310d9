"""Applies a bijector to the leading channels and passes the rest through."""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow import _validation
from tfp_glow.bijectors import _base
from tfp_glow.bijectors import initialize

__all__ = ['ActiveChannels']


class ActiveChannels(_base.GlowBijector):
  """Runs `bijector` on `x[..., :channels]`; later channels pass unchanged.

  In the multi-scale architecture, each `Split` replaces the factored-out half
  with standard-normal noise, which later levels must leave alone. Because
  `Squeeze` keeps factored-out channels behind the active ones, each later
  level is `ActiveChannels(level, channels)`:

  ```none
  forward:  x = concat([bijector.forward(z[..., :channels]), z[..., channels:]])
  inverse:  z = concat([bijector.inverse(x[..., :channels]), x[..., channels:]])
  ldj       = ldj of `bijector` on the leading channels (event rank 3)
  ```

  Keyword arguments are passed on to `bijector`. As with `tfb.Chain`, `copy()`
  wraps the same `bijector` object (its variables are shared); pass
  `copy(bijector=...)` to wrap another.

  Args:
    bijector: a bijector on `[..., H, W, channels]` events that keeps shapes.
    channels: Python `int`, how many leading channels are active.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'active_channels'`.

  Raises:
    TypeError, ValueError: if `channels` is not a positive int.

  #### Examples

  >>> from tfp_glow.bijectors import ChannelReverse
  >>> layer = ActiveChannels(ChannelReverse(2), channels=2)
  >>> layer.inverse(tf.constant([[[[1., 2., 3.]]]])).numpy()
  array([[[[2., 1., 3.]]]], dtype=float32)
  """

  def __init__(self, bijector: tfp.bijectors.Bijector, channels: int,
               validate_args: bool = False, name: str = 'active_channels'):
    parameters = dict(locals())
    self._channels = _validation.positive_int('channels', channels)
    self._bijector = bijector
    with tf.name_scope(name) as name:
      super().__init__(
          forward_min_event_ndims=3, is_constant_jacobian=False,
          validate_args=validate_args, dtype=bijector.dtype,
          parameters=parameters, name=name)

  @property
  def bijector(self) -> tfp.bijectors.Bijector:
    return self._bijector

  def _apply(self, x, direction, kwargs):
    active, passive = x[..., :self._channels], x[..., self._channels:]
    if direction == 'forward':
      out = self._bijector.forward(active, **kwargs)
      ildj = -self._bijector.forward_log_det_jacobian(active, 3, **kwargs)
    else:
      out = self._bijector.inverse(active, **kwargs)
      ildj = self._bijector.inverse_log_det_jacobian(active, 3, **kwargs)
    return tf.concat([out, passive], axis=-1), {'ildj': ildj}

  def _augmented_forward(self, z, **kwargs):
    return self._apply(z, 'forward', kwargs)

  def _augmented_inverse(self, x, **kwargs):
    return self._apply(x, 'inverse', kwargs)

  def _forward(self, z, **kwargs):
    active = self._bijector.forward(z[..., :self._channels], **kwargs)
    return tf.concat([active, z[..., self._channels:]], axis=-1)

  def _inverse(self, x, **kwargs):
    active = self._bijector.inverse(x[..., :self._channels], **kwargs)
    return tf.concat([active, x[..., self._channels:]], axis=-1)

  def _forward_log_det_jacobian(self, z, **kwargs):
    return self._bijector.forward_log_det_jacobian(
        z[..., :self._channels], 3, **kwargs)

  def _inverse_log_det_jacobian(self, x, **kwargs):
    return self._bijector.inverse_log_det_jacobian(
        x[..., :self._channels], 3, **kwargs)

  def data_init(self, x: tf.Tensor, **kwargs) -> tf.Tensor:
    """Initialises `bijector` on the active channels; returns `inverse(x)`."""
    active = initialize.data_init(
        self._bijector, x[..., :self._channels], **kwargs)
    return tf.concat([active, x[..., self._channels:]], axis=-1)
