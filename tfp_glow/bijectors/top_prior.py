"""The learned (optionally class-conditional) prior of the top latent."""

from typing import Optional, Sequence, Tuple

import tensorflow as tf

from tfp_glow import _context
from tfp_glow import _validation
from tfp_glow import nn
from tfp_glow.bijectors import _base
from tfp_glow.bijectors import _shapes

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

  With `context_shape`, every call needs `context` too, and the context adds
  to `mean` and `logs` as the label does: a vector context `[..., D]`
  through a zero-initialised linear map `context @ W_c` (`[D, 2C]`, the same
  at every position, as for the one-hot label); an image context `[..., H,
  W, c]` at the top latent's resolution through a zero-initialised 3x3
  convolution (`nn.ZeroConv2D`), one value per position. Still N(0, 1) at
  init.

  Args:
    event_shape: `(H, W, C)` of the top latent.
    num_classes: Python `int` or `None`. Default value: `None`.
    learn_top: Python `bool`; `False` fixes `loc` and `log_scale` at 0.
      Default value: `True`.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'top_prior'`.
    context_shape: `None`, `(D,)` or `(H, W, c)` with `(H, W)` those of
      `event_shape`. Default value: `None`.

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
               name: str = 'top_prior',
               context_shape: Optional[Sequence[int]] = None):
    parameters = dict(locals())
    event_shape = _validation.image_shape(event_shape, 'event_shape')
    if num_classes is not None:
      num_classes = _validation.positive_int('num_classes', num_classes, 2)
    dtype = _validation.float_dtype(dtype)
    context_shape = _context.check_context_shape(context_shape)
    if _context.is_image(context_shape) and (
        context_shape[:2] != tuple(event_shape[:2])):
      raise ValueError(
          '`context_shape` of an image context must have the height and '
          f'width of `event_shape` {tuple(event_shape)}; got context_shape='
          f'{context_shape}.')
    self._num_classes = num_classes
    self._context_shape = context_shape
    with tf.name_scope(name) as name:
      zeros = tf.zeros(event_shape, dtype)
      self._loc = tf.Variable(zeros, trainable=learn_top, name='loc')
      self._log_scale = tf.Variable(zeros, trainable=learn_top,
                                    name='log_scale')
      if num_classes:
        self._class_weights = tf.Variable(
            tf.zeros([num_classes, 2 * event_shape[-1]], dtype),
            name='class_weights')
      if context_shape is not None:
        self._context_net = nn.zero_conditioner(
            context_shape[-1], 2 * event_shape[-1], dtype=dtype) if (
                _context.is_image(context_shape)) else None
        self._context_weights = None if self._context_net else tf.Variable(
            tf.zeros([context_shape[0], 2 * event_shape[-1]], dtype),
            name='context_weights')
      super().__init__(
          forward_min_event_ndims=3, validate_args=validate_args, dtype=dtype,
          parameters=parameters, name=name)

  @property
  def num_classes(self) -> Optional[int]:
    return self._num_classes

  @property
  def context_shape(self) -> Optional[Tuple[int, ...]]:
    """The shape of one context, or `None` (no context)."""
    return self._context_shape

  def _mean_and_logs(self, labels, context):
    mean, logs = self._loc, self._log_scale
    for h in (self._label_term(labels), self._context_term(context)):
      if h is not None:
        mean_h, logs_h = tf.split(h, 2, axis=-1)
        mean, logs = mean + mean_h, logs + logs_h
    return mean, logs

  def _label_term(self, labels):
    """`onehot(labels) @ W_y`, `[..., 1, 1, 2C]`, or `None`."""
    if not self._num_classes:
      if labels is not None:
        raise ValueError('`labels` were given, but this prior was built '
                         'without `num_classes`.')
      return None
    if labels is None:
      raise ValueError('`labels` is required: this prior was built with '
                       f'num_classes={self._num_classes}.')
    onehot = tf.one_hot(tf.cast(labels, tf.int32), self._num_classes,
                        dtype=self.dtype)
    return tf.matmul(onehot[..., None, :], self._class_weights)[..., None, :]

  def _context_term(self, context):
    """The context's share of `(mean, logs)`, `[..., H or 1, W or 1, 2C]`."""
    shape = self._context_shape
    if shape is None:
      if context is not None:
        raise ValueError('TopPrior: `context` was given, but this prior was '
                         'built without `context_shape`.')
      return None
    if context is None:
      raise ValueError('TopPrior: `context` is required: this prior was built '
                       f'with context_shape={shape}.')
    context = tf.convert_to_tensor(context, self.dtype, name='context')
    if self._context_net is not None:
      return _shapes.apply_flat(self._context_net, context)
    return tf.matmul(context[..., None, :], self._context_weights)[
        ..., None, :]

  def _forward(self, eps, labels=None, context=None):
    mean, logs = self._mean_and_logs(labels, context)
    return mean + tf.exp(logs) * eps

  def _inverse(self, z, labels=None, context=None):
    mean, logs = self._mean_and_logs(labels, context)
    return (z - mean) * tf.exp(-logs)

  def _forward_log_det_jacobian(self, eps, labels=None, context=None):
    _, logs = self._mean_and_logs(labels, context)
    return tf.reduce_sum(logs, axis=[-3, -2, -1])

  def _inverse_log_det_jacobian(self, z, labels=None, context=None):
    _, logs = self._mean_and_logs(labels, context)
    return -tf.reduce_sum(logs, axis=[-3, -2, -1])
