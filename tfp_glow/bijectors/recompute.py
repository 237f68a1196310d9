"""Gradient checkpointing: recompute a block's activations in the backward pass."""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow.bijectors import _base
from tfp_glow.bijectors import initialize

__all__ = ['Recompute']


class Recompute(_base.GlowBijector):
  """Wraps a shape-preserving bijector so its activations are not stored.

  In the density direction (`inverse`, which training differentiates), the
  wrapped bijector's output and log-det are computed under
  `tf.recompute_grad`: the backward pass recomputes the block's intermediate
  activations (its coupling networks) instead of keeping them in memory, at
  the cost of one more forward pass of the block. Values and gradients are
  unchanged. `forward` (sampling) runs the bijector as is.

  ```none
  inverse:  z, ildj = recompute_grad(lambda x: (b.inverse(x), b.ildj(x)))(x)
  forward:  x = b.forward(z)
  ```

  As with `tfb.Chain`, `copy()` wraps the same `bijector` object (its
  variables are shared); pass `copy(bijector=...)` to wrap another.

  Args:
    bijector: a bijector on `[..., H, W, C]` events that keeps shapes.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'recompute'`.

  #### Examples

  >>> from tfp_glow.bijectors import ActNorm
  >>> layer = Recompute(ActNorm(3))
  >>> layer.inverse(tf.ones([2, 4, 4, 3])).shape
  TensorShape([2, 4, 4, 3])
  """

  def __init__(self, bijector: tfp.bijectors.Bijector,
               validate_args: bool = False, name: str = 'recompute'):
    parameters = dict(locals())
    self._bijector = bijector
    with tf.name_scope(name) as name:
      super().__init__(
          forward_min_event_ndims=3, validate_args=validate_args,
          dtype=bijector.dtype, parameters=parameters, name=name)

  @property
  def bijector(self) -> tfp.bijectors.Bijector:
    return self._bijector

  def _inverse_and_ildj(self, x, **kwargs):
    bijector = self._bijector

    @tf.recompute_grad
    def block(x):
      return (bijector.inverse(x, **kwargs),
              bijector.inverse_log_det_jacobian(x, 3, **kwargs))

    return block(x)

  def _augmented_inverse(self, x, **kwargs):
    z, ildj = self._inverse_and_ildj(x, **kwargs)
    return z, {'ildj': ildj}

  def _inverse(self, x, **kwargs):
    return self._inverse_and_ildj(x, **kwargs)[0]

  def _inverse_log_det_jacobian(self, x, **kwargs):
    return self._inverse_and_ildj(x, **kwargs)[1]

  def _forward(self, z, **kwargs):
    return self._bijector.forward(z, **kwargs)

  def _forward_log_det_jacobian(self, z, **kwargs):
    return self._bijector.forward_log_det_jacobian(z, 3, **kwargs)

  def data_init(self, x: tf.Tensor, **kwargs) -> tf.Tensor:
    """Initialises the wrapped bijector from `x`; returns `inverse(x)`."""
    return initialize.data_init(self._bijector, x, **kwargs)
