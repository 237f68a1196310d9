"""The learned (optionally class-conditional) prior of the top latent."""

from typing import Optional, Sequence

import tensorflow as tf

from tfp_glow import _validation
from tfp_glow.bijectors import _base

__all__ = ['TopPrior']


class TopPrior(_base.GlowBijector):
  """The top level's prior `N(mean, exp(logs))` as a bijector of N(0, 1) noise.

  openai/glow's `--learntop` learns the mean and log-scale of the top latent
  (per position and channel), and `--ycond` adds a zero-initialised linear map
  of the one-hot label. Written as a bijector of standard-normal `eps`:

  ```none
  mean, logs = loc + y_onehot @ W_y[:, :C],  log_scale + y_onehot @ W_y[:, C:]
  forward:  z   = mean + exp(logs) * eps           (sampling)
  inverse:  eps = (z - mean) * exp(-logs)          (the paper's f)
  fldj      = sum over H, W, C of logs
  ```

  Everything starts at zero, so the prior starts as N(0, 1). With
  `num_classes`, every call needs `labels`: int class ids of the batch shape,
  passed as the keyword `labels` (in a `tfb.Chain`, routed by this
  bijector's name).

  Args:
    event_shape: `(H, W, C)` of the top latent.
    num_classes: Python `int` or `None`. Default value: `None`.
    learn_top: Python `bool`; `False` fixes `loc` and `log_scale` at 0.
      Default value: `True`.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'top_prior'`.

  Raises:
    TypeError, ValueError: for a bad `event_shape` or `num_classes`.

  #### Examples

  >>> prior = TopPrior([2, 2, 4], num_classes=10)
  >>> eps = tf.zeros([3, 2, 2, 4])
  >>> prior.forward(eps, labels=[1, 2, 3]).shape
  TensorShape([3, 2, 2, 4])
  """

  def __init__(self, event_shape: Sequence[int],
               num_classes: Optional[int] = None, learn_top: bool = True,
               dtype: tf.DType = tf.float32, validate_args: bool = False,
               name: str = 'top_prior'):
    parameters = dict(locals())
    event_shape = _validation.image_shape(event_shape, 'event_shape')
    if num_classes is not None:
      num_classes = _validation.positive_int('num_classes', num_classes, 2)
    dtype = _validation.float_dtype(dtype)
    self._num_classes = num_classes
    with tf.name_scope(name) as name:
      zeros = tf.zeros(event_shape, dtype)
      self._loc = tf.Variable(zeros, trainable=learn_top, name='loc')
      self._log_scale = tf.Variable(zeros, trainable=learn_top,
                                    name='log_scale')
      if num_classes:
        self._class_weights = tf.Variable(
            tf.zeros([num_classes, 2 * event_shape[-1]], dtype),
            name='class_weights')
      super().__init__(
          forward_min_event_ndims=3, validate_args=validate_args, dtype=dtype,
          parameters=parameters, name=name)

  @property
  def num_classes(self) -> Optional[int]:
    return self._num_classes

  def _mean_and_logs(self, labels):
    if not self._num_classes:
      if labels is not None:
        raise ValueError('`labels` were given, but this prior was built '
                         'without `num_classes`.')
      return self._loc, self._log_scale
    if labels is None:
      raise ValueError('`labels` is required: this prior was built with '
                       f'num_classes={self._num_classes}.')
    onehot = tf.one_hot(tf.cast(labels, tf.int32), self._num_classes,
                        dtype=self.dtype)
    h = tf.matmul(onehot[..., None, :], self._class_weights)[..., None, :]
    mean_y, logs_y = tf.split(h, 2, axis=-1)
    return self._loc + mean_y, self._log_scale + logs_y

  def _forward(self, eps, labels=None):
    mean, logs = self._mean_and_logs(labels)
    return mean + tf.exp(logs) * eps

  def _inverse(self, z, labels=None):
    mean, logs = self._mean_and_logs(labels)
    return (z - mean) * tf.exp(-logs)

  def _forward_log_det_jacobian(self, eps, labels=None):
    _, logs = self._mean_and_logs(labels)
    return tf.reduce_sum(logs, axis=[-3, -2, -1])

  def _inverse_log_det_jacobian(self, z, labels=None):
    _, logs = self._mean_and_logs(labels)
    return -tf.reduce_sum(logs, axis=[-3, -2, -1])
