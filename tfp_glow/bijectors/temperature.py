"""Temperature: scales the latent, as the paper's sampling temperature."""

import tensorflow as tf

from tfp_glow.bijectors import _base

__all__ = ['Temperature']


class Temperature(_base.GlowBijector):
  """Multiplies the latent noise by a temperature T given at call time.

  Sampling at temperature T (Glow section 5) draws every latent, at every
  level, from N(0, T^2) instead of N(0, 1). As the first layer of the flow
  (the last in a `tfb.Chain` list), `forward(eps, temperature=T)` turns N(0, 1)
  noise into that tempered noise; with the default T = 1 it is the identity.

  ```none
  forward:  y = T * eps
  inverse:  eps = y / T
  fldj      = log T   (per element)
  ```

  Args:
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'temperature'`.

  #### Examples

  >>> Temperature().forward(tf.ones([2]), temperature=0.5).numpy()
  array([0.5, 0.5], dtype=float32)
  """

  def __init__(self, validate_args: bool = False, name: str = 'temperature'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      super().__init__(
          forward_min_event_ndims=0, is_constant_jacobian=True,
          validate_args=validate_args, parameters=parameters, name=name)

  def _forward(self, eps, temperature=1.0):
    return eps * tf.cast(temperature, eps.dtype)

  def _inverse(self, y, temperature=1.0):
    return y / tf.cast(temperature, y.dtype)

  def _forward_log_det_jacobian(self, eps, temperature=1.0):
    return tf.math.log(tf.cast(temperature, eps.dtype))

  def _inverse_log_det_jacobian(self, y, temperature=1.0):
    return -tf.math.log(tf.cast(temperature, y.dtype))
