"""The context of a conditional Glow in `GlowModel`: its data rules, the encoder.

A conditional Glow (`context_shape` set) is a density p(x | context). The data
carry a raw context per image, which the model's optional `context_encoder`
(a Keras layer, trained with the Glow) maps to the Glow's context; without an
encoder the raw context is the Glow's context:

```none
raw context      one per image: [N, ...] with N the images' batch size;
                 [N, *context_shape] of an int or float dtype without encoder
                 finite, if of a float dtype
encoder output   [N, *context_shape]
```

Static rules raise in Python (`TypeError`, `ValueError`) when a step is
traced; the rules the trace cannot decide are assertions the returned tensors
depend on (`tf.errors.InvalidArgumentError`), as for the images (see
`data_checks`).
"""

import math
from typing import Any, Optional, Sequence

import tensorflow as tf

from tfp_glow.glow import Glow
from tfp_glow.training._keras import keras

__all__ = ['check_encoder', 'check_raw', 'check_encoded', 'raw_spec',
           'spec_of']

TensorLike = tf.types.experimental.TensorLike


def check_encoder(encoder: Any, glow: Glow) -> Optional[keras.layers.Layer]:
  """`encoder` if it is a callable Keras layer of a conditional Glow's model.

  Raises:
    TypeError: if `encoder` is neither `None` nor a Keras layer (or model) of
      the active Keras (`tfp_glow.training._keras.keras`).
    ValueError: if `glow` has no `context_shape`.
  """
  if encoder is None:
    return None
  if not (isinstance(encoder, keras.layers.Layer) and callable(encoder)):
    raise TypeError(
        '`context_encoder` must be None or a Keras layer or model (of '
        f'{keras.__name__} {keras.__version__}, the active Keras) mapping the '
        'raw context to the Glow\'s context; got '
        f'{type(encoder).__module__}.{type(encoder).__name__}.')
  if glow.context_shape is None:
    raise ValueError(
        '`context_encoder` needs a conditional Glow: build it with '
        'Glow(..., context_shape=...) (the shape of the encoder\'s output); '
        f'got a Glow with context_shape=None and context_encoder={encoder!r}.')
  return encoder


def check_raw(glow: Glow, context: Optional[TensorLike], images: tf.Tensor,
              where: str, has_encoder: bool,
              given: str = 'no context') -> Optional[tf.Tensor]:
  """The raw context of a batch of `images`, checked (see the module rules).

  Args:
    glow: the model's Glow.
    context: the raw context of the data, or `None`.
    images: the batch's images, a `Tensor` `[N, H, W, C]` (already checked).
    where: the method, e.g. `'GlowModel.train_step'`, named in messages.
    has_encoder: Python `bool`, the model has a `context_encoder` (which
      takes any shape and dtype).
    given: what the data held, for the message of a missing context.

  Returns:
    The context as a `Tensor` (computed after its assertions), or `None` for
    an unconditional Glow.

  Raises:
    ValueError: for a missing or unexpected context, or a static shape
      breaking a rule.
    TypeError: for a context of another dtype than int or float (without
      encoder).
  """
  if not _required(glow, context, where, given):
    return None
  context = tf.convert_to_tensor(context)
  if not has_encoder:
    _check_glow_context(context, glow.context_shape, where)
  if context.shape.rank == 0:
    raise ValueError(f'{where}: `context` must have one context per image, '
                     'shape [N, ...]; got a scalar.')
  _check_static_batch(context.shape, images, where, '`context`')
  checks = [_batch_assertion(context, images, where, '`context`')]
  if not has_encoder:
    context, shape_checks = _with_known_shape(context, glow.context_shape,
                                              where)
    checks += shape_checks
  if context.dtype.is_floating:
    checks.append(_finite_assertion(context, where))
  return _after(checks, context)


def _required(glow, context, where, given):
  """Whether the data's context is needed; raises if it is given in vain
  or missing."""
  context_shape = glow.context_shape
  if context_shape is None:
    if context is not None:
      raise ValueError(
          f'{where}: the data hold a `context`, but the Glow is not '
          'conditional (context_shape=None): build it with Glow(..., '
          "context_shape=...), or drop the 'context' of the data.")
    return False
  if context is None:
    form = "{'images': ..., 'context': ...}"
    if glow.num_classes:
      form = "{'images': ..., 'labels': ..., 'context': ...}"
    raise ValueError(
        f'{where}: the Glow is conditional (context_shape={context_shape}): '
        f'the data must be dicts {form} with one `context` per image; got '
        f'{given}.')
  return True


def _check_glow_context(context, context_shape, where):
  """Static rules of a context that goes to the Glow as it is (no encoder)."""
  if not (context.dtype.is_floating or context.dtype.is_integer):
    raise TypeError(f'{where}: `context` must be of a float (or int) dtype; '
                    f'got dtype {context.dtype.name}.')
  shape = context.shape
  if shape.rank is not None and not (
      shape.rank == 1 + len(context_shape) and
      shape[1:].is_compatible_with(context_shape)):
    raise ValueError(
        f'{where}: `context` must have shape '
        f'{_text(["N", *context_shape])} (the Glow\'s context_shape='
        f'{context_shape}); got shape {_text(shape.as_list())}. Give the '
        'GlowModel a `context_encoder` to map other contexts to this shape.')


def _finite_assertion(context, where):
  finite = tf.math.is_finite(context)
  return tf.debugging.Assert(tf.reduce_all(finite), [
      f'{where}: `context` must be finite; got',
      tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64)),
      'NaN or inf values'])


def check_encoded(glow: Glow, context: tf.Tensor,
                  images: Optional[tf.Tensor], where: str) -> tf.Tensor:
  """The `context_encoder`'s output, checked: `[N, *glow.context_shape]`.

  Args:
    glow: the model's Glow.
    context: the encoder's output.
    images: the batch's images, whose batch size `N` the output must have,
      or `None` for any batch size.
    where: named in messages.

  Returns:
    `context`, computed after the assertion of its batch size (if any).

  Raises:
    ValueError: if its static shape is not `[N, *context_shape]`.
  """
  context_shape = glow.context_shape
  context = tf.convert_to_tensor(context)
  shape = context.shape
  if shape.rank is not None and not (
      shape.rank == 1 + len(context_shape) and
      shape[1:].is_compatible_with(context_shape)):
    raise ValueError(
        f'{where}: the `context_encoder` must map the context to the Glow\'s '
        f'context, shape {_text(["N", *context_shape])} (context_shape='
        f'{context_shape}); its output has shape {_text(shape.as_list())}. '
        'Change the encoder\'s output layer, or build the Glow with '
        'context_shape=<the shape of one output>.')
  if images is None:
    return context
  _check_static_batch(shape, images, where, 'the `context_encoder` output')
  return _after([_batch_assertion(context, images, where,
                                  'the `context_encoder` output')], context)


def spec_of(context: TensorLike) -> Optional[tf.TensorSpec]:
  """`TensorSpec([None, *shape[1:]], dtype)` of a batch of raw contexts.

  `None` if the shape of one context is not known.
  """
  context = tf.convert_to_tensor(context)
  if context.shape.rank is None or context.shape.rank < 1:
    return None
  return tf.TensorSpec([None, *context.shape[1:]], context.dtype,
                       name='context')


def raw_spec(encoder: Optional[keras.layers.Layer],
             seen: Optional[tf.TensorSpec],
             glow: Glow) -> Optional[tf.TensorSpec]:
  """The spec of the raw context a served model takes, or `None` if unknown.

  In this order: the Glow's context (no encoder); the input of a built
  functional encoder (shape and dtype); the raw context seen at the init,
  `seen`; the input shape a built encoder records (`get_build_config`), in
  the Glow's dtype.
  """
  if glow.context_shape is None:
    return None
  if encoder is None:
    return tf.TensorSpec([None, *glow.context_shape], glow.dtype,
                         name='context')
  inputs = getattr(encoder, 'inputs', None) if encoder.built else None
  if isinstance(inputs, (list, tuple)) and len(inputs) == 1 and (
      len(tuple(inputs[0].shape)) >= 1):
    return tf.TensorSpec([None, *tuple(inputs[0].shape)[1:]],
                         tf.as_dtype(inputs[0].dtype), name='context')
  if seen is not None:
    return seen
  config = encoder.get_build_config() if encoder.built else None
  shape = (config or {}).get('input_shape')
  if isinstance(shape, (list, tuple)) and shape and all(
      d is None or isinstance(d, int) for d in shape):
    return tf.TensorSpec([None, *shape[1:]], glow.dtype, name='context')
  return None


def _check_static_batch(shape, images, where, what):
  """Raises if the context's and the images' static batch sizes differ."""
  num_images = images.shape[0] if images.shape.rank else None
  num = shape[0] if shape.rank else None
  if num is not None and num_images is not None and num != num_images:
    raise ValueError(
        f'{where}: {what} must hold one context per image, shape [N, ...] '
        f'with N = {num_images} the batch size of `images`; got shape '
        f'{_text(shape.as_list())}.')


def _batch_assertion(context, images, where, what):
  """Assertion of one context per image (static shapes may not tell)."""
  if context.shape.rank and images.shape.rank and (
      context.shape[0] is not None and context.shape[0] == images.shape[0]):
    return None
  # The padded shape vector: a scalar of an unknown rank fails the check
  # instead of an op reading index 0 of an empty shape.
  num = tf.concat([tf.shape(context), [-1]], axis=0)[0]
  num_images = tf.shape(images)[0]
  return tf.debugging.Assert(
      tf.equal(num, num_images),
      [f'{where}: {what} must hold one context per image, shape [N, ...] '
       'with N the batch size of `images`; got', num, 'contexts for',
       num_images, 'images'])


def _with_known_shape(context, context_shape, where):
  """Asserts a shape the trace does not know, then sets it by a reshape.

  As `data_checks._with_known_shapes` does for the images (and for the same
  reason: a reshape, not `set_shape`, so Grappler cannot fold the check).
  """
  shape = context.shape
  if shape.rank == 1 + len(context_shape) and shape[1:].is_fully_defined():
    return context, []
  rank = 1 + len(context_shape)
  dynamic = tf.shape(context)
  padded = tf.concat([dynamic, tf.zeros([rank], tf.int32)], axis=0)
  check = tf.debugging.Assert(
      tf.logical_and(tf.equal(tf.size(dynamic), rank), tf.reduce_all(
          tf.equal(padded[1:rank], list(context_shape)))),
      [f'{where}: `context` must have shape {_text(["N", *context_shape])}; '
       'got shape', dynamic], summarize=8)
  flat = tf.reshape(context, [-1])
  size = math.prod(context_shape)
  num = tf.size(flat) // size
  return tf.reshape(flat[:num * size], [num, *context_shape]), [check]


def _after(checks, context):
  """`context`, computed after the `checks` ran (`None`s: run eagerly)."""
  checks = [c for c in checks if c is not None]
  if not checks:
    return context
  with tf.control_dependencies(checks):
    return tf.identity(context)


def _text(dims: Sequence[Any]) -> str:
  return '[' + ', '.join('?' if d is None else str(d) for d in dims) + ']'

