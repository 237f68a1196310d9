"""Helpers to run 4-D image ops on `[..., H, W, C]` tensors of any batch rank."""

from typing import Callable, List, Optional, Tuple, Union

import tensorflow as tf

__all__ = ['apply_flat', 'check_channels', 'event_dims', 'shape_text']

# One image tensor or a tuple of them.
Images = Union[tf.Tensor, Tuple[tf.Tensor, ...]]


def apply_flat(fn: Callable[..., Images], x: tf.Tensor,
               context: Optional[tf.Tensor] = None,
               context_ndims: int = 0) -> Images:
  """Applies `fn` (a `[N, H, W, C]` op) to `x` with any batch shape in front.

  `fn` may return one image tensor or a tuple of them. With a `context`
  (batch shape that of `x`, then `context_ndims` event dimensions), the call
  is `fn(x, context)`, both flattened to one batch dimension alike.
  """
  if x.shape.rank == 4:
    return fn(x) if context is None else fn(x, context)
  batch_shape = tf.shape(x)[:-3]
  flat_x = tf.reshape(x, [-1] + event_dims(x))
  if context is None:
    out = fn(flat_x)
  else:
    event = context.shape[context.shape.rank - context_ndims:]
    context_event = (event.as_list() if event.is_fully_defined() else
                     tf.shape(context)[tf.rank(context) - context_ndims:])
    out = fn(flat_x, tf.reshape(context, tf.concat([[-1], context_event], 0)))
  return tf.nest.map_structure(
      lambda o: tf.reshape(o, tf.concat([batch_shape, event_dims(o)], 0)), out)


def event_dims(x: tf.Tensor) -> List[Union[int, tf.Tensor]]:
  """H, W, C of `x`: static ints where known (keeps shapes static), else dynamic."""
  if x.shape[-3:].is_fully_defined():  # No shape op in the graph.
    return x.shape[-3:].as_list()
  dynamic = tf.shape(x)
  return [x.shape[i] if x.shape[i] is not None else dynamic[i]
          for i in (-3, -2, -1)]


def check_channels(layer: str, x: tf.Tensor, channels: int) -> None:
  """Raises ValueError if the static channel count of `x` is not `channels`."""
  if x.shape.rank is not None and x.shape.rank < 3:
    raise ValueError(f'{layer} expects images of shape [..., H, W, C]; got a '
                     f'tensor of shape {x.shape}.')
  actual = x.shape[-1]
  if actual is not None and actual != channels:
    raise ValueError(f'{layer} was built for {channels} channels; got a '
                     f'tensor of shape {x.shape} with {actual} channels.')


def shape_text(shape) -> str:
  """A static shape as text, `?` for unknown dimensions: `[?, 4, 4, 2]`."""
  dims = tf.TensorShape(shape).as_list() if shape is not None else []
  return '[' + ', '.join('?' if d is None else str(d) for d in dims) + ']'
