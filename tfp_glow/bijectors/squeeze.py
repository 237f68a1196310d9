"""Squeeze: trade spatial size for channels (Glow section 3, RealNVP)."""

import tensorflow as tf

from tfp_glow.bijectors import _base
from tfp_glow.bijectors import _shapes

__all__ = ['Squeeze']


def _squeeze(x):
  """[N, H, W, C] -> [N, H/2, W/2, 4C] in openai/glow's channel order."""
  h, w, c = _shapes.event_dims(x)
  x = tf.reshape(x, [-1, h // 2, 2, w // 2, 2, c])
  x = tf.transpose(x, [0, 1, 3, 5, 2, 4])
  return tf.reshape(x, [-1, h // 2, w // 2, 4 * c])


def _unsqueeze(x):
  """[N, H, W, C] -> [N, 2H, 2W, C/4], the inverse of `_squeeze`."""
  h, w, c = _shapes.event_dims(x)
  x = tf.reshape(x, [-1, h, w, c // 4, 2, 2])
  x = tf.transpose(x, [0, 1, 4, 2, 5, 3])
  return tf.reshape(x, [-1, 2 * h, 2 * w, c // 4])


class Squeeze(_base.GlowBijector):
  """Space-to-depth by 2 in the paper's direction (x -> z).

  TFP's forward is the sampling direction, so `forward` un-squeezes:

  ```none
  inverse (the paper's squeeze):  [..., H, W, C]    -> [..., H/2, W/2, 4C]
  forward:                        [..., H, W, 4C]   -> [..., 2H, 2W, C]
  ldj = 0
  ```

  Channel order follows openai/glow: output channel `4c + 2i + j` holds input
  channel `c` at offset `(i, j)` of each 2x2 block. Because of that order, the
  squeeze of `concat([a, b])` is `concat([squeeze(a), squeeze(b)])`: channels
  factored out at one level stay behind the active ones at the next.

  Args:
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'squeeze'`.

  #### Examples

  >>> squeeze = Squeeze()
  >>> squeeze.inverse(tf.zeros([5, 8, 8, 3])).shape
  TensorShape([5, 4, 4, 12])
  >>> squeeze.inverse_event_shape([8, 8, 3])
  TensorShape([4, 4, 12])
  """

  def __init__(self, validate_args: bool = False, name: str = 'squeeze'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      super().__init__(
          forward_min_event_ndims=3, is_constant_jacobian=True,
          validate_args=validate_args, parameters=parameters, name=name)

  def _forward(self, z):
    return _shapes.apply_flat(_unsqueeze, z)

  def _inverse(self, x):
    return _shapes.apply_flat(_squeeze, x)

  def _forward_log_det_jacobian(self, z):
    return tf.zeros([], z.dtype)

  def _inverse_log_det_jacobian(self, x):
    return tf.zeros([], x.dtype)

  def _forward_event_shape(self, shape):
    h, w, c = shape[-3:]
    if c is not None and c % 4:
      raise ValueError(f'Squeeze.forward needs channels divisible by 4; got '
                       f'event shape {shape}.')
    return shape[:-3].concatenate(
        [None if h is None else 2 * h, None if w is None else 2 * w,
         None if c is None else c // 4])

  def _inverse_event_shape(self, shape):
    h, w, c = shape[-3:]
    for size, axis in ((h, 'height'), (w, 'width')):
      if size is not None and size % 2:
        raise ValueError(f'Squeeze.inverse needs an even {axis}; got event '
                         f'shape {shape}.')
    return shape[:-3].concatenate(
        [None if h is None else h // 2, None if w is None else w // 2,
         None if c is None else 4 * c])

  def _forward_event_shape_tensor(self, shape):
    return tf.concat([shape[:-3], shape[-3:-1] * 2, shape[-1:] // 4], axis=0)

  def _inverse_event_shape_tensor(self, shape):
    return tf.concat([shape[:-3], shape[-3:-1] // 2, shape[-1:] * 4], axis=0)
