"""Conditioner networks for the coupling layers and the split prior.

A conditioner factory is any callable

    conditioner_fn(in_channels, out_channels, *, dtype, seed) -> net

returning a `tf.Module` (or Keras layer) that maps `[N, H, W, in_channels]` to
`[N, H, W, out_channels]`. In a conditional Glow (`context_shape` set) the
factory is called with one more keyword, `context_shape` (the context's shape
at the layer's resolution: `(D,)` or `(H, W, c)`), and the net is called as
`net(x, context)`. A net that also has a `data_init(x)` method gets its
data-dependent initialisation run by `Glow.initialize`. A net that also has a
`split_call(x)` method, returning `(h[..., 0::2], h[..., 1::2])` of
`h = net(x)`, lets the couplings skip two strided slices (and their slower
gradients); the nets here compute it with one convolution whose output
channels are reordered.

The defaults follow openai/glow: hidden convolutions without bias, each
followed by an ActNorm with data-dependent init, and a zero-initialised output
convolution with a learned `exp(3 * logs)` scale, so every layer built on them
starts as the identity.
"""

import functools
from typing import Optional, Protocol, Tuple, runtime_checkable
import warnings

import numpy as np
import tensorflow as tf

from tfp_glow import _context
from tfp_glow import _conv
from tfp_glow import _validation

__all__ = [
    'Conditioner', 'ConditionerFn', 'ConvActNorm', 'ZeroConv2D', 'GlowConditioner',
    'glow_conditioner', 'zero_conditioner', 'actnorm_data_init',
]



@runtime_checkable
class Conditioner(Protocol):
  """A coupling or split-prior network: `[N, H, W, in]` -> `[N, H, W, out]`.

  Optional methods, used when present: `data_init(x)` (data-dependent init,
  run by `Glow.initialize`, returns the output) and `split_call(x)`
  (`(h[..., 0::2], h[..., 1::2])` of `h = net(x)` without strided slices).
  """

  def __call__(self, x: tf.Tensor,
               context: Optional[tf.Tensor] = None) -> tf.Tensor:
    ...


class ConditionerFn(Protocol):
  """The factory a coupling calls once to build its network.

  `conditioner_fn(in_channels, out_channels, dtype=, seed=)`: `in_channels` is
  the half the network reads, `out_channels` what the layer needs (2 per
  transformed channel for affine, 1 for additive); `seed` is a Python int.
  Layers of a conditional Glow also pass `context_shape=` (see the module
  docstring); factories for unconditional models need not accept it.
  """

  def __call__(self, in_channels: int, out_channels: int, *,
               dtype: tf.DType, seed: Optional[int],
               context_shape: Optional[Tuple[int, ...]] = None
               ) -> Conditioner:
    ...


_INIT_EPS = 1e-6
# A channel whose std on the init batch is below this is treated as constant:
# scaling it to unit std would multiply it by up to 1 / _INIT_EPS and put
# log(1e6) = 13.8 nats per pixel into every later log-det (measured: +2227 in
# log_prob of an 8x8 Glow initialised on a constant batch). One pixel level
# of 8-bit data is 2**-8 = 0.004 in the flow's units, its dequantization
# noise has std 0.0011.
_MIN_INIT_STD = 1e-4


def actnorm_data_init(x, loc_and_log_scale, initialized, warn=True):
  """Sets `loc`, `log_scale` from the per-channel moments of `x`, once.

  `loc_and_log_scale` is the `[2, C]` variable of an ActNorm: row 0 `loc`,
  row 1 `log_scale`.
  After the call `(x - loc) * exp(-log_scale)` has mean 0 and std 1 in every
  channel. A channel that is constant on the batch (std < 1e-4) keeps unit
  scale (`log_scale` 0) instead, with a Python warning naming the layer (in
  eager mode, if `warn`: the networks inside couplings pass False, since
  their constant channels follow from constant inputs already reported).
  Once `initialized` is True the call changes nothing, so it is safe to run
  again after a restore. Statistics are taken in at least float32.
  """
  stats_dtype = tf.float64 if x.dtype == tf.float64 else tf.float32
  x = tf.cast(x, stats_dtype)
  mean, variance = tf.nn.moments(x, axes=list(range(x.shape.rank - 1)))
  std = tf.sqrt(variance)
  constant = std < _MIN_INIT_STD
  new_log_scale = tf.where(constant, tf.zeros_like(std),
                           tf.math.log(std + _INIT_EPS))
  if warn and tf.executing_eagerly() and not bool(initialized.numpy()):
    _warn_if_constant(constant.numpy(), loc_and_log_scale.name)
  new = tf.cast(tf.stack([mean, new_log_scale]), loc_and_log_scale.dtype)
  loc_and_log_scale.assign(tf.where(initialized, loc_and_log_scale, new))
  initialized.assign(True)


def _warn_if_constant(constant, variable_name):
  if constant.any():
    layer = variable_name.rsplit('/', 1)[0]
    warnings.warn(
        f'ActNorm data init of {layer!r}: channels {np.flatnonzero(constant).tolist()} '
        f'of {constant.size} are constant on the init batch (std < {_MIN_INIT_STD}); '
        'they keep unit scale. Initialise on a varied batch of real images.',
        UserWarning, stacklevel=2)


class ConvActNorm(tf.Module):
  """'SAME' convolution without bias, then an ActNorm (openai/glow's `conv2d`).

  ```none
  y = (conv(x, kernel) - loc) * exp(-log_scale)
    = conv(x, kernel * exp(-log_scale)) + (-loc * exp(-log_scale))
  ```

  The second form is what runs: one convolution and a bias add, which
  TensorFlow fuses with `activation` (e.g. `tf.nn.relu`, applied after the
  ActNorm when given). `offset` (`[N, out_channels]`, a conditional
  network's projection of a vector context) adds to `conv(x, kernel)` before
  the ActNorm, one value per example and channel. The kernel starts ~ N(0, 0.05);
  `data_init` sets `loc` and `log_scale` so that `y` has per-channel mean 0
  and std 1 on a batch; both live in one `[2, out_channels]` variable,
  `loc_and_log_scale`, as in `tfp_glow.bijectors.ActNorm`. Computes in the
  dtype of its input, so a network can run in bfloat16 or float16 while its
  variables stay float32.
  """

  def __init__(self, in_channels, out_channels, kernel_size, dtype, seed,
               activation=None, name='conv_act_norm'):
    super().__init__(name=name)
    self.activation = activation
    rng = np.random.default_rng(seed)
    shape = (kernel_size, kernel_size, in_channels, out_channels)
    self.kernel = tf.Variable(
        rng.normal(0.0, 0.05, shape).astype(dtype.as_numpy_dtype),
        name='kernel')
    self.loc_and_log_scale = tf.Variable(
        tf.zeros([2, out_channels], dtype), name='loc_and_log_scale')
    self.initialized = tf.Variable(False, trainable=False, name='initialized')

  def __call__(self, x, offset=None):
    loc, log_scale = tf.unstack(self.loc_and_log_scale)
    inv_scale = tf.exp(-log_scale)
    kernel = tf.cast(self.kernel * inv_scale, x.dtype)
    bias = tf.cast(-loc * inv_scale, x.dtype)
    if offset is None:
      return _conv.conv2d(x, kernel, bias, self.activation)
    # A bias per example: (offset - loc) * inv_scale, broadcast over H, W.
    y = _conv.conv2d(x, kernel) + (
        tf.cast(offset, x.dtype) * tf.cast(inv_scale, x.dtype)
        + bias)[:, tf.newaxis, tf.newaxis, :]
    return y if self.activation is None else self.activation(y)

  def data_init(self, x, offset=None):
    """Initialises the ActNorm from the batch `x`; returns the output."""
    y = _conv.conv2d(x, tf.cast(self.kernel, x.dtype))
    if offset is not None:
      y += tf.cast(offset, x.dtype)[:, tf.newaxis, tf.newaxis, :]
    actnorm_data_init(y, self.loc_and_log_scale, self.initialized, warn=False)
    return self(x, offset)


def _deinterleave(channels):
  """Channel order that puts the even channels first, then the odd ones."""
  return list(range(0, channels, 2)) + list(range(1, channels, 2))


def _even_channels_first(t):
  """`tf.gather(t, _deinterleave(C), axis=-1)`, as a transpose where it can.

  With an even `C` and a static shape, the reorder is `[..., C/2, 2]` ->
  `[..., 2, C/2]`: its gradient is one transpose, where a gather's is a
  segment sum with a dozen shape ops (a quarter of a coupling's backward).
  """
  channels = t.shape[-1]
  if channels % 2 or not t.shape[:-1].is_fully_defined():
    return tf.gather(t, _deinterleave(channels), axis=-1)
  lead = t.shape[:-1].as_list()
  pairs = tf.reshape(t, lead + [channels // 2, 2])
  rank = len(lead)
  swapped = tf.transpose(pairs, list(range(rank)) + [rank + 1, rank])
  return tf.reshape(swapped, lead + [channels])


class ZeroConv2D(tf.Module):
  """3x3 convolution starting at exactly zero: `(conv(x) + b) * exp(3 * logs)`.

  The factor 3 is openai/glow's `logscale_factor`: it lets the output scale
  move faster than a plain variable would under Adam. The scale is folded into
  the kernel and bias, so that one fused convolution runs. `b` and `logs`
  live in one `[2, out_channels]` variable, `bias_and_logs` (fewer variables,
  a smaller step; see `tfp_glow.bijectors.ActNorm`). The output is in the
  variables' dtype whatever the input's.

  With `context_shape` (a conditional split prior or network), the call is
  `self(x, context)`: an image context `[N, H, W, c]` is concatenated to `x`
  as more input channels; a vector context `[N, D]` adds a zero-initialised
  linear map `context @ context_kernel` to the output, at every position.
  Either way the output is exactly zero until trained.
  """

  def __init__(self, in_channels, out_channels, dtype, seed=None,
               name='zero_conv2d', context_shape=None):
    del seed  # Zero init is deterministic.
    super().__init__(name=name)
    self.context_shape = _context.check_context_shape(context_shape)
    image_channels = (self.context_shape[-1]
                      if _context.is_image(self.context_shape) else 0)
    self.kernel = tf.Variable(
        tf.zeros([3, 3, in_channels + image_channels, out_channels], dtype),
        name='kernel')
    self.bias_and_logs = tf.Variable(tf.zeros([2, out_channels], dtype),
                                     name='bias_and_logs')
    if self.context_shape is not None and not image_channels:
      self.context_kernel = tf.Variable(
          tf.zeros([self.context_shape[0], out_channels], dtype),
          name='context_kernel')

  @tf.Module.with_name_scope  # Its ops named for it (graphs, profiles).
  def __call__(self, x, context=None):
    return self._scaled_conv(x, context)

  @tf.Module.with_name_scope
  def split_call(self, x, context=None):
    """`(h[..., 0::2], h[..., 1::2])` of `h = self(x)`, from one convolution."""
    channels = self.kernel.shape[-1]
    h = self._scaled_conv(x, context, deinterleave=True)
    return tf.split(h, [channels - channels // 2, channels // 2], axis=-1)

  def _scaled_conv(self, x, context=None, deinterleave=False):
    x = _with_image_context(x, context, self.context_shape)
    bias, logs = tf.unstack(self.bias_and_logs)
    scale = tf.exp(3.0 * logs)
    kernel, bias = self.kernel * scale, bias * scale
    vector = _vector_context(context, self.context_shape)
    if vector is not None:
      bias = tf.matmul(tf.cast(vector, bias.dtype), self.context_kernel
                       )[:, tf.newaxis, tf.newaxis, :] * scale + bias
    if deinterleave:  # Reorder tensors: a variable's gradient would be sparse.
      kernel, bias = _even_channels_first(kernel), _even_channels_first(bias)
    h = tf.cast(_conv.conv2d(x, tf.cast(kernel, x.dtype)), bias.dtype)
    return h + bias if vector is not None else tf.nn.bias_add(h, bias)


class GlowConditioner(tf.Module):
  """The paper's coupling network.

  3x3 conv -> ActNorm -> ReLU -> 1x1 conv -> ActNorm -> ReLU -> ZeroConv2D
  (each conv and ActNorm pair a `ConvActNorm`),
  mapping `[N, H, W, in_channels]` to `[N, H, W, out_channels]`; its output is
  exactly zero until trained.

  With `compute_dtype` (`tf.bfloat16` or `tf.float16`, for mixed precision),
  the hidden layers compute in that dtype; the variables, the output layer
  and hence every log-det stay in `dtype`.

  With `context_shape`, the network reads a context too, `net(x, context)`,
  in its first layer only (as SRFlow's conditional couplings do): an image
  context `[N, H, W, c]` at the layer's resolution is concatenated to `x` as
  `c` more input channels of the 3x3 convolution; a vector context `[N, D]`
  goes through a learned projection `context @ context_kernel` (`[D,
  hidden_channels]`, ~N(0, 0.05) like the kernels) added to the first
  convolution's output before its ActNorm, the same as tiling it over the
  positions and concatenating it, at `D * hidden` instead of `9 * D * hidden
  * H * W` operations. The output layer is still zero-initialised, so the
  network's output is 0 until trained, whatever the context.
  """

  def __init__(self, in_channels, out_channels, *, hidden_channels,
               dtype=tf.float32, seed=None, compute_dtype=None,
               context_shape=None, name='glow_conditioner'):
    super().__init__(name=name)
    self.compute_dtype = tf.as_dtype(compute_dtype or dtype)
    self.context_shape = _context.check_context_shape(context_shape)
    image_channels = (self.context_shape[-1]
                      if _context.is_image(self.context_shape) else 0)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(2**31, size=2)
    self.conv_in = ConvActNorm(in_channels + image_channels, hidden_channels,
                               3, dtype, seeds[0], activation=tf.nn.relu)
    self.conv_hidden = ConvActNorm(hidden_channels, hidden_channels, 1, dtype,
                                   seeds[1], activation=tf.nn.relu)
    self.conv_out = ZeroConv2D(hidden_channels, out_channels, dtype)
    if self.context_shape is not None and not image_channels:
      self.context_kernel = tf.Variable(
          rng.normal(0.0, 0.05, (self.context_shape[0], hidden_channels))
          .astype(dtype.as_numpy_dtype), name='context_kernel')

  @tf.Module.with_name_scope  # Its ops named for it (graphs, profiles).
  def __call__(self, x, context=None):
    return self.conv_out(self._hidden(x, context))

  @tf.Module.with_name_scope
  def split_call(self, x: tf.Tensor, context: Optional[tf.Tensor] = None
                 ) -> Tuple[tf.Tensor, tf.Tensor]:
    """`(h[..., 0::2], h[..., 1::2])` of `h = self(x)`, without slicing."""
    return self.conv_out.split_call(self._hidden(x, context))

  def _inputs(self, x, context):
    """The first layer's input and its per-example offset (or `None`)."""
    x = tf.cast(_with_image_context(x, context, self.context_shape),
                self.compute_dtype)
    vector = _vector_context(context, self.context_shape)
    if vector is None:
      return x, None
    return x, tf.matmul(tf.cast(vector, self.compute_dtype),
                        tf.cast(self.context_kernel, self.compute_dtype))

  def _hidden(self, x, context=None):
    return self.conv_hidden(self.conv_in(*self._inputs(x, context)))

  def data_init(self, x, context=None):
    """Initialises both ActNorms from the batch `x`; returns the output."""
    h = self.conv_in.data_init(*self._inputs(x, context))
    return self.conv_out(self.conv_hidden.data_init(h))


def _with_image_context(x, context, context_shape):
  """`x` with an image context concatenated as more channels."""
  if context_shape is None and context is not None:
    raise ValueError('A context was given to a network built without '
                     '`context_shape`.')
  if context_shape is not None and context is None:
    raise ValueError('`context` is required: this network was built with '
                     f'context_shape={context_shape}.')
  if not _context.is_image(context_shape):
    return x
  return tf.concat([x, tf.cast(context, x.dtype)], axis=-1)


def _vector_context(context, context_shape):
  """The context if it is a vector, else `None`."""
  if context_shape is None or _context.is_image(context_shape):
    return None
  return context


def glow_conditioner(hidden_channels: int,
                     compute_dtype: Optional[tf.DType] = None) -> ConditionerFn:
  """Returns a factory of `GlowConditioner`s with `hidden_channels` units.

  Args:
    hidden_channels: Python `int`, width of the hidden layers (the paper: 512).
    compute_dtype: `None`, `tf.bfloat16` or `tf.float16`: run the hidden layers
      in low precision (see `GlowConditioner`). Default value: `None`.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  >>> fn = glow_conditioner(hidden_channels=16)
  >>> net = fn(2, 4, dtype=tf.float32, seed=0)
  >>> net(tf.ones([1, 8, 8, 2])).shape
  TensorShape([1, 8, 8, 4])
  """
  _validation.positive_int('hidden_channels', hidden_channels)
  if compute_dtype is not None:
    _validation.one_of('compute_dtype', tf.as_dtype(compute_dtype).name,
                       ('bfloat16', 'float16', 'float32', 'float64'))
  return functools.partial(GlowConditioner, hidden_channels=hidden_channels,
                           compute_dtype=compute_dtype)


def zero_conditioner(in_channels: int, out_channels: int, *,
                     dtype: tf.DType = tf.float32,
                     seed: Optional[int] = None,
                     context_shape: Optional[Tuple[int, ...]] = None
                     ) -> 'ZeroConv2D':
  """Factory of the split prior's network: one `ZeroConv2D` (openai/glow)."""
  return ZeroConv2D(in_channels, out_channels, dtype, seed,
                    context_shape=context_shape)
