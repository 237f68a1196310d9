"""The context of a conditional Glow: its shape rules and per-level resizing.

A context is what p(x | context) conditions on: a vector `[..., D]` (an
embedding, attributes) or an image `[..., h, w, c]` (a low-resolution image,
a feature map). Every layer that reads it (couplings, split priors, the top
prior) reads it at its own resolution: an image context is resized to the
level's height and width (bilinear, antialiased when it shrinks), a vector is
the same at every level. The context enters the layers' networks only, so for
a fixed context every layer stays exactly invertible.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

__all__ = ['check_context_shape', 'is_image', 'level_shape', 'at_resolution',
           'check_context', 'context_assertions']

ContextShape = Tuple[int, ...]


def check_context_shape(context_shape: Optional[Sequence[int]],
                        name: str = 'context_shape') -> Optional[ContextShape]:
  """`context_shape` as a tuple of ints, or `None`.

  Raises:
    TypeError, ValueError: unless it is `None`, `(D,)` or `(h, w, c)` of
      positive ints; the message names `name`.
  """
  if context_shape is None:
    return None
  try:
    dims = tuple(context_shape)
  except TypeError:
    raise TypeError(f'`{name}` must be a vector shape (D,) or an image shape '
                    f'(h, w, c); got {context_shape!r}.') from None
  ok_ints = all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                for d in dims)
  if not ok_ints or len(dims) not in (1, 3) or any(d < 1 for d in dims):
    raise ValueError(f'`{name}` must be a vector shape (D,) or an image shape '
                     f'(h, w, c) of positive ints; got {context_shape!r}.')
  return tuple(int(d) for d in dims)


def is_image(context_shape: Optional[ContextShape]) -> bool:
  """Whether `context_shape` is an image shape `(h, w, c)`."""
  return context_shape is not None and len(context_shape) == 3


def level_shape(context_shape: Optional[ContextShape], height: int,
                width: int) -> Optional[ContextShape]:
  """The context's shape at a level of `height` x `width` positions."""
  if not is_image(context_shape):
    return context_shape
  return (height, width, context_shape[-1])


def at_resolution(context: tf.Tensor, shape: ContextShape) -> tf.Tensor:
  """`context` (`[N, *raw_shape]`) at a layer's context `shape`.

  An image is resized to `shape[:2]` with antialiased bilinear interpolation
  (an average over the covered pixels when it shrinks, a smooth interpolation
  when it grows; differentiable, so gradients reach the context; computed
  in float32, as `tf.image.resize` computes); a vector,
  or an image already of that size, is returned as is.
  """
  if not is_image(shape) or tuple(context.shape[-3:-1]) == tuple(shape[:2]):
    return context
  batch_shape = tf.shape(context)[:-3]
  flat = tf.reshape(context, [-1] + context.shape[-3:].as_list())
  resized = tf.image.resize(tf.cast(flat, tf.float32), shape[:2],
                            method='bilinear', antialias=True)
  return tf.reshape(tf.cast(resized, context.dtype),
                    tf.concat([batch_shape, list(shape)], 0))


def check_context(context, context_shape: Optional[ContextShape],
                  batch_shape: tf.TensorShape, dtype: tf.DType, where: str,
                  batch_shape_tensor: Optional[tf.Tensor] = None
                  ) -> Optional[tf.Tensor]:
  """The context of a call, as a tensor of `batch_shape + context_shape`.

  A context of one example (batch shape `[1]`, or no batch dimension) is
  broadcast to `batch_shape`, so one context serves a whole batch.

  Args:
    context: the given context, or `None`.
    context_shape: the model's context shape, or `None` (unconditional).
    batch_shape: the static batch shape of the call's data.
    dtype: the model's dtype, which the context is cast to.
    where: the method, e.g. `'Glow.log_prob'`, named in messages.
    batch_shape_tensor: the batch shape as a 1-D tensor, for broadcasting
      when `batch_shape` is not fully known. Default value: `None`.

  Raises:
    ValueError: if a context is missing, unexpected or of the wrong shape;
      the message names `context` and the expected shape.
    TypeError: if it is not of a float (or int) dtype.
  """
  if context_shape is None:
    if context is not None:
      raise ValueError(f'{where}: `context` was given, but this Glow was '
                       'built without `context_shape` (an unconditional '
                       'model); build it with Glow(..., context_shape=...).')
    return None
  expected = _shape_text(['N'] + list(context_shape))
  if context is None:
    raise ValueError(f'{where}: `context` is required: this Glow was built '
                     f'with context_shape={context_shape}; pass a context of '
                     f'shape {expected}.')
  context = tf.convert_to_tensor(context)
  if not (context.dtype.is_floating or context.dtype.is_integer):
    raise TypeError(f'{where}: `context` must be of a float dtype; got dtype '
                    f'{context.dtype.name}.')
  context = tf.cast(context, dtype)
  rank = len(context_shape)
  shape = context.shape
  if shape.rank is None:
    return context
  event = shape[shape.rank - rank:] if shape.rank >= rank else None
  if event is None or not event.is_compatible_with(context_shape):
    raise ValueError(f'{where}: `context` must have shape {expected} '
                     f'(context_shape={context_shape}); got shape '
                     f'{_shape_text(shape.as_list())}.')
  context_batch = shape[:shape.rank - rank]
  batch_shape = tf.TensorShape(batch_shape)
  if context_batch.num_elements() in (None, 0) or (
      context_batch.num_elements() > 1):
    if not context_batch.is_compatible_with(batch_shape):
      raise ValueError(
          f'{where}: `context` must have one context per example (batch '
          f'shape {_shape_text(batch_shape.as_list())}) or one for all '
          f'(batch shape [1]): shape {expected}; got shape '
          f'{_shape_text(shape.as_list())}.')
    return context
  if context_batch.as_list() == batch_shape.as_list():
    return context
  # One context for every example: broadcast it over the batch.
  if batch_shape.is_fully_defined():
    target = tf.constant(batch_shape.as_list(), tf.int32)
  elif batch_shape_tensor is not None:
    target = tf.cast(batch_shape_tensor, tf.int32)
  else:
    return context
  return tf.broadcast_to(tf.reshape(context, context_shape),
                         tf.concat([target, list(context_shape)], 0))


def context_assertions(context: tf.Tensor, where: str) -> List:
  """Assertions that `context` is finite (`validate_args`)."""
  finite = tf.reduce_all(tf.math.is_finite(context))
  return [tf.debugging.Assert(
      finite, [f'{where}: `context` must be finite (no NaN or inf).'])]


def _shape_text(dims):
  return '[' + ', '.join('?' if d is None else str(d) for d in dims) + ']'
