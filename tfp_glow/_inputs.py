"""Checks of the data given to `Glow` and `GlowModel`: shapes, pixels, labels.

Two kinds of rule, as in TFP:

- Static rules (shapes, dtypes, and values known in Python, such as a list of
  labels) are checked in Python when a call is traced or run, for free, and
  raise `ValueError` / `TypeError` naming the argument.
- Value rules on tensors (pixel range and integrality, NaN, label range) cost a
  reduction over the batch; they return `tf.debugging` assertions that raise
  `tf.errors.InvalidArgumentError` with the same kind of message. `Glow` runs
  them under `validate_args=True`; `GlowModel`'s data path always does.

Every message names the argument, states the rule and shows what was given.
"""

from typing import List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

__all__ = ['check_event_shape', 'pixel_assertions', 'dequantized_assertions',
           'check_labels', 'label_assertions']

TensorLike = tf.types.experimental.TensorLike
# A static shape: a `tf.TensorShape` or its dimensions (`None` for unknown).
ShapeLike = Union[tf.TensorShape, Sequence[Optional[int]]]
# What `tf.debugging.Assert` returns: an op in a graph, `None` in eager mode.
Assertions = List[Optional[tf.Operation]]


def _shape_text(shape):
  return '[' + ', '.join('?' if d is None else str(d) for d in shape) + ']'


def check_event_shape(name: str, x: tf.Tensor, event_shape: ShapeLike,
                      where: str,
                      batch_rank: Optional[int] = None) -> tf.Tensor:
  """Raises ValueError unless `x`'s static shape ends in `event_shape`.

  Args:
    name: the argument's name, e.g. `'x'`.
    x: a `Tensor` (its static shape is read; unknown dimensions pass).
    event_shape: the expected trailing dimensions, e.g. `(8, 8, 1)`.
    where: the method, e.g. `'Glow.log_prob'`, named in the message.
    batch_rank: Python `int`, the exact number of leading dimensions, or
      `None` for any.

  Returns:
    `x`.
  """
  expected = list(event_shape)
  shape = x.shape
  if shape.rank is None:
    return x
  dims = shape.as_list()
  trailing = dims[len(dims) - len(expected):] if len(dims) >= len(expected) else None
  ok = trailing is not None and all(
      d is None or d == e for d, e in zip(trailing, expected))
  if ok and batch_rank is not None:
    ok = len(dims) == len(expected) + batch_rank
  if not ok:
    lead = '..., ' if batch_rank is None else 'N, ' * batch_rank
    raise ValueError(
        f'{where}: `{name}` must have shape [{lead}{", ".join(map(str, expected))}]'
        f'; got shape {_shape_text(dims)}.')
  return x


def _assert(condition, message):
  # tf.debugging.Assert, not assert_equal: the error is the message alone.
  return tf.debugging.Assert(condition, [message])


def _range_text(num_bits):
  return f'[0, {2**num_bits}) (num_bits={num_bits})'


def pixel_assertions(name: str, images: TensorLike, num_bits: int,
                     where: str) -> Assertions:
  """Assertions that `images` hold finite integer pixel values in range.

  Each assertion tests its rule alone: integrality and range are tested on
  the finite values only, so a NaN reports "must be finite" and not also a
  range (in a graph any failing assertion may raise first). The messages show
  the count of non-finite values and the range of the others, which tells
  float images in [0, 1] apart.

  Returns:
    A list of assertion ops (`None`s in eager mode, where they ran already).
  """
  images = tf.convert_to_tensor(images)
  values = tf.cast(images, tf.float64)
  pixel_range = _range_text(num_bits)
  checks = []
  if not images.dtype.is_integer:
    finite = tf.math.is_finite(values)
    values = tf.where(finite, values, tf.zeros_like(values))
    checks.append(tf.debugging.Assert(tf.reduce_all(finite), [
        f'{where}: `{name}` must be finite; got',
        tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64)),
        'NaN or inf values']))
  low, high = tf.reduce_min(values), tf.reduce_max(values)
  if not images.dtype.is_integer:
    checks.append(tf.debugging.Assert(
        tf.reduce_all(tf.equal(values, tf.floor(values))), [
            f'{where}: `{name}` must hold integer pixel values in '
            f'{pixel_range}; got non-integer values from', low, 'to', high,
            '. For float images in [0, 1], pass tf.cast(tf.round(images * '
            f'{2**num_bits - 1}), tf.uint8)']))
  checks.append(tf.debugging.Assert(
      tf.logical_or(tf.equal(tf.size(values), 0), tf.logical_and(
          low >= 0.0, high < 2.0**num_bits)),
      [f'{where}: `{name}` must hold pixel values in {pixel_range}; got min '
       'and max', low, high, '. Reduce the bit depth of the data or set '
       'num_bits']))
  return checks


def dequantized_assertions(name: str, x: TensorLike, num_bits: int,
                           where: str) -> Assertions:
  """Assertions that dequantized `x` is finite and in `[0, 2**num_bits]`."""
  x = tf.convert_to_tensor(x)
  low, high = tf.reduce_min(x), tf.reduce_max(x)
  return [
      _assert(tf.reduce_all(tf.math.is_finite(x)),
              f'{where}: `{name}` must be finite; it holds NaN or inf'),
      tf.debugging.Assert(
          tf.logical_or(tf.equal(tf.size(x), 0), tf.logical_and(
              low >= 0.0, high <= 2.0**num_bits)),
          [f'{where}: `{name}` must be dequantized pixels in '
           f'[0, {2**num_bits}] (num_bits={num_bits}); got min and max',
           low, high]),
  ]


def check_labels(labels: Optional[TensorLike], num_classes: Optional[int],
                 batch_shape: ShapeLike, where: str) -> Optional[tf.Tensor]:
  """Static checks of `labels`; returns them as an int32 `Tensor` or `None`.

  Raises `ValueError` / `TypeError` naming `labels` if a class-conditional
  model gets none, an unconditional one gets some, their dtype is not an
  integer, their static shape differs from `batch_shape`, or their values are
  known in Python and out of `[0, num_classes)`.

  Args:
    labels: `None`, or class ids (list, array or `Tensor`).
    num_classes: Python `int` or `None` (unconditional model).
    batch_shape: `tf.TensorShape` the labels must have (unknown dims pass).
    where: the method, named in the message.
  """
  if not num_classes:
    if labels is not None:
      raise ValueError(f'{where}: `labels` must be None: the model was built '
                       f'without `num_classes`; got labels={labels!r}.')
    return None
  if labels is None:
    raise ValueError(f'{where}: `labels` is required: the model is '
                     f'class-conditional (num_classes={num_classes}); pass int '
                     'class ids, one per example.')
  static = tf.get_static_value(labels) if tf.is_tensor(labels) else labels
  if static is not None:
    array = np.asarray(static)
    if not (array.dtype.kind in 'iu' or array.size == 0):
      raise TypeError(f'{where}: `labels` must be int class ids; got dtype '
                      f'{array.dtype}.')
    if array.size and (array.min() < 0 or array.max() >= num_classes):
      raise ValueError(
          f'{where}: `labels` must be class ids in [0, {num_classes}) '
          f'(num_classes={num_classes}); got values from {array.min()} to '
          f'{array.max()}.')
  labels = tf.convert_to_tensor(labels) if static is None else tf.constant(
      np.asarray(static))
  if not labels.dtype.is_integer:
    raise TypeError(f'{where}: `labels` must be int class ids; got dtype '
                    f'{labels.dtype.name}.')
  batch_shape = tf.TensorShape(batch_shape)
  if not labels.shape.is_compatible_with(batch_shape):
    raise ValueError(
        f'{where}: `labels` must have one class id per example, shape '
        f'{_shape_text(batch_shape.as_list() if batch_shape.rank is not None else [None])}'
        f'; got shape {_shape_text(labels.shape.as_list())}.')
  return tf.cast(labels, tf.int32)


def label_assertions(labels: tf.Tensor, num_classes: int,
                     where: str) -> Assertions:
  """Assertions that int `labels` lie in `[0, num_classes)`."""
  return [tf.debugging.Assert(
      tf.reduce_all(tf.logical_and(labels >= 0, labels < num_classes)),
      [f'{where}: `labels` must be class ids in [0, {num_classes}); got min '
       'and max', tf.reduce_min(labels), tf.reduce_max(labels)])]
