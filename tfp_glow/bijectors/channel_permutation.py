"""A fixed permutation of the channels, stored in a variable."""

from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tfp_glow.bijectors import _base

__all__ = ['ChannelPermutation']


class ChannelPermutation(_base.GlowBijector):
  """Reorders the channels of every pixel by a fixed permutation.

  ```none
  inverse (the paper's f):  z[..., i] = x[..., permutation[i]]
  forward (sampling):       x = z[..., argsort(permutation)]
  ldj = 0
  ```

  The permutation is a non-trainable `tf.Variable`, so checkpoints and
  SavedModels carry it. `ChannelReverse` and `ChannelShuffle` are the two
  permutations the paper compares with the 1x1 convolution.

  Args:
    permutation: 1-D sequence of ints, a permutation of `range(C)`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'channel_permutation'`.
    parameters: Python `dict` or `None`: a subclass passes its own
      `dict(locals())`, so that `copy()` calls the subclass's constructor (as
      in `tfb.Chain`). Default value: `None` (this constructor's arguments).

  Raises:
    ValueError: if `permutation` is not a permutation of `range(C)`.

  #### Examples

  >>> perm = ChannelPermutation([2, 0, 1])
  >>> perm.inverse(tf.constant([10., 20., 30.])).numpy()
  array([30., 10., 20.], dtype=float32)
  >>> copy = perm.copy()  # Same arguments, its own variable.
  >>> copy.permutation is perm.permutation, copy == perm
  (False, False)
  """

  def __init__(self, permutation: Union[Sequence[int], np.ndarray],
               validate_args: bool = False, name: str = 'channel_permutation',
               parameters: Optional[dict] = None):
    parameters = dict(locals()) if parameters is None else parameters
    values = np.asarray(permutation)
    if (values.ndim != 1 or values.size == 0
        or sorted(values.tolist()) != list(range(values.size))):
      raise ValueError('`permutation` must be a permutation of range(C); '
                       f'got {permutation!r}.')
    with tf.name_scope(name) as name:
      self._permutation = tf.Variable(
          values.astype(np.int32), trainable=False, name='permutation')
      super().__init__(
          forward_min_event_ndims=1, is_constant_jacobian=True,
          validate_args=validate_args, parameters=parameters, name=name)

  @property
  def permutation(self) -> tf.Variable:
    return self._permutation

  def _forward(self, z):
    return tf.gather(z, tf.argsort(self._permutation), axis=-1)

  def _inverse(self, x):
    return tf.gather(x, self._permutation, axis=-1)

  def _forward_log_det_jacobian(self, z):
    return tf.zeros([], z.dtype)

  def _inverse_log_det_jacobian(self, x):
    return tf.zeros([], x.dtype)
