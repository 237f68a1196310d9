"""What the coupling layers share: the channel split and the conditioner."""

import inspect
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfp_glow import _context
from tfp_glow import _validation
from tfp_glow import nn
from tfp_glow.bijectors import _base
from tfp_glow.bijectors import _shapes

__all__ = ['Coupling']


class Coupling(_base.GlowBijector):
  """Base of layers that transform the second channel half given the first.

  The input `[..., H, W, C]` splits into `x1 = x[..., :C // 2]`, which passes
  through unchanged, and `x2 = x[..., C // 2:]`, which is transformed with
  parameters `h = net(x1)`. `net` is built once, by
  `conditioner_fn(C // 2, out_channels, dtype=dtype, seed=seed)`, and kept as an
  attribute so that `tf.Module` tracks its variables.

  With `context_shape` (a conditional layer), every call takes the keyword
  `context` (`[..., *context_shape]`, batch shape that of the input), the
  network is built with `conditioner_fn(..., context_shape=context_shape)`
  and called as `net(x1, context)`. The context enters the network only, so
  for a fixed context the layer is exactly invertible, with the same log-det
  formula.
  """

  def __init__(self, channels: int, conditioner_fn: nn.ConditionerFn,
               params_per_channel: int, *, is_constant_jacobian: bool,
               seed: Optional[int], dtype: tf.DType, validate_args: bool,
               parameters: dict, name: str,
               context_shape: Optional[Sequence[int]] = None):
    channels = _validation.positive_int('channels', channels, minimum=2)
    if not callable(conditioner_fn):
      raise TypeError('`conditioner_fn` must be callable as '
                      'conditioner_fn(in_channels, out_channels, dtype=, seed=); '
                      f'got {conditioner_fn!r}.')
    dtype = _validation.float_dtype(dtype)
    self._context_shape = _context.check_context_shape(context_shape)
    self._channels = channels
    self._split = channels // 2
    out_channels = params_per_channel * (channels - self._split)
    with tf.name_scope(name) as name:
      self._net = _build_net(
          conditioner_fn, self._split, out_channels, dtype,
          np.random.default_rng(seed).integers(2**31), self._context_shape)
      super().__init__(
          forward_min_event_ndims=3, is_constant_jacobian=is_constant_jacobian,
          validate_args=validate_args, dtype=dtype, parameters=parameters,
          name=name)

  @property
  def context_shape(self) -> Optional[Tuple[int, ...]]:
    """The shape of one context at this layer, or `None` (unconditional)."""
    return self._context_shape

  @property
  def conditioner(self) -> nn.Conditioner:
    """The network mapping the first channel half to the parameters."""
    return self._net

  def _halves(self, x):
    _shapes.check_channels(type(self).__name__, x, self._channels)
    # tf.split, not slicing: its gradient is one concat, not two padded adds.
    return tf.split(x, [self._split, self._channels - self._split], axis=-1)

  def _apply_net(self, fn, x1, context):
    """`fn(x1)`, or `fn(x1, context)` for a conditional layer."""
    context = _context_for(self, context, x1)
    return _shapes.apply_flat(fn, x1, context,
                              len(self._context_shape or ()))

  def _params(self, x1, context=None):
    return self._apply_net(self._net, x1, context)

  def _param_pairs(self, x1, context=None):
    """`(h[..., 0::2], h[..., 1::2])` of `h = net(x1)`: openai/glow's layout."""
    if hasattr(self._net, 'split_call'):  # Without strided slices: faster.
      return self._apply_net(self._net.split_call, x1, context)
    h = self._params(x1, context)
    return h[..., 0::2], h[..., 1::2]

  def data_init(self, x: tf.Tensor,
                context: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Runs the conditioner's data init on `x`'s first half; returns `inverse(x)`."""
    kwargs = {} if context is None else {'context': context}
    if hasattr(self._net, 'data_init'):
      x1, _ = self._halves(x)
      self._apply_net(self._net.data_init, x1, context)
    return self.inverse(x, **kwargs)

  # `context` is passed on only when given, so that a subclass written for
  # unconditional layers (`_augmented_inverse(self, x)`) keeps working.
  def _forward(self, z, **kwargs):
    return self._augmented_forward(z, **kwargs)[0]

  def _inverse(self, x, **kwargs):
    return self._augmented_inverse(x, **kwargs)[0]


def _build_net(conditioner_fn, in_channels, out_channels, dtype, seed,
               context_shape):
  """The coupling's network; a conditional one gets `context_shape=`."""
  if context_shape is None:
    return conditioner_fn(in_channels, out_channels, dtype=dtype, seed=seed)
  try:
    signature = inspect.signature(conditioner_fn)
  except (TypeError, ValueError):   # A builtin or C callable: try it.
    signature = None
  if signature is not None and 'context_shape' not in signature.parameters \
      and not any(p.kind == p.VAR_KEYWORD
                  for p in signature.parameters.values()):
    raise TypeError(
        '`conditioner_fn` must accept the keyword `context_shape` in a '
        'conditional layer (context_shape='
        f'{context_shape}): conditioner_fn(in_channels, out_channels, dtype=, '
        f'seed=, context_shape=), returning a net called as net(x, context); '
        f'got {conditioner_fn!r}.')
  return conditioner_fn(in_channels, out_channels, dtype=dtype, seed=seed,
                        context_shape=context_shape)


def _context_for(layer, context, x1):
  """`context`, after the layer's static rules; raises naming `context`."""
  name = type(layer).__name__
  shape = layer.context_shape
  if shape is None:
    if context is not None:
      raise ValueError(f'{name}: `context` was given, but the layer was built '
                       'without `context_shape`.')
    return None
  if context is None:
    raise ValueError(f'{name}: `context` is required: the layer was built with '
                     f'context_shape={shape}.')
  context = tf.convert_to_tensor(context, layer.dtype, name='context')
  if x1.shape.rank is None:
    return context
  expected = list(x1.shape[:-3]) + list(shape)
  if context.shape.rank is not None and not context.shape.is_compatible_with(
      expected):
    raise ValueError(
        f'{name}: `context` must have shape '
        f'{_shapes.shape_text(expected)} (the batch shape of the input, then '
        f'context_shape={shape}); got shape '
        f'{_shapes.shape_text(context.shape)}.')
  return context
