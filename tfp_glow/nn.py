"""Conditioner networks for the coupling layers and the split prior.

A conditioner factory is any callable

    conditioner_fn(in_channels, out_channels, *, dtype, seed) -> net

returning a `tf.Module` (or Keras layer) that maps `[N, H, W, in_channels]` to
`[N, H, W, out_channels]`. A net that also has a `data_init(x)` method gets its
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

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    ...


class ConditionerFn(Protocol):
  """The factory a coupling calls once to build its network.

  `conditioner_fn(in_channels, out_channels, dtype=, seed=)`: `in_channels` is
  the half the network reads, `out_channels` what the layer needs (2 per
  transformed channel for affine, 1 for additive); `seed` is a Python int.
  """

  def __call__(self, in_channels: int, out_channels: int, *,
               dtype: tf.DType, seed: Optional[int]) -> Conditioner:
    ...


_INIT_EPS = 1e-6
# A channel whose std on the init batch is below this is treated as constant:
# scaling it to unit std would multiply it by up to 1 / _INIT_EPS and put
# log(1e6) = 13.8 nats per pixel into every later log-det (measured: +2227 in
# log_prob of an 8x8 Glow initialised on a constant batch). One pixel level
# of 8-bit data is 2**-8 = 0.004 in the flow's units, its dequantization
# noise has std 0.0011.
_MIN_INIT_STD = 1e-4


def actnorm_data_init(x, loc, log_scale, initialized, warn=True):
  """Sets `loc`, `log_scale` from the per-channel moments of `x`, once.

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
    _warn_if_constant(constant.numpy(), loc.name)
  loc.assign(tf.where(initialized, loc, tf.cast(mean, loc.dtype)))
  log_scale.assign(
      tf.where(initialized, log_scale, tf.cast(new_log_scale, log_scale.dtype)))
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
  ActNorm when given). The kernel starts ~ N(0, 0.05);
  `data_init` sets `loc` and `log_scale` so that `y` has per-channel mean 0
  and std 1 on a batch. Computes in the dtype of its input, so a network can
  run in bfloat16 or float16 while its variables stay float32.
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
    self.loc = tf.Variable(tf.zeros([out_channels], dtype), name='loc')
    self.log_scale = tf.Variable(
        tf.zeros([out_channels], dtype), name='log_scale')
    self.initialized = tf.Variable(False, trainable=False, name='initialized')

  def __call__(self, x):
    inv_scale = tf.exp(-self.log_scale)
    kernel = tf.cast(self.kernel * inv_scale, x.dtype)
    bias = tf.cast(-self.loc * inv_scale, x.dtype)
    return _conv.conv2d(x, kernel, bias, self.activation)

  def data_init(self, x):
    """Initialises the ActNorm from the batch `x`; returns the output."""
    actnorm_data_init(_conv.conv2d(x, tf.cast(self.kernel, x.dtype)),
                      self.loc, self.log_scale, self.initialized, warn=False)
    return self(x)


def _deinterleave(channels):
  """Channel order that puts the even channels first, then the odd ones."""
  return list(range(0, channels, 2)) + list(range(1, channels, 2))


class ZeroConv2D(tf.Module):
  """3x3 convolution starting at exactly zero: `(conv(x) + b) * exp(3 * logs)`.

  The factor 3 is openai/glow's `logscale_factor`: it lets the output scale
  move faster than a plain variable would under Adam. The scale is folded into
  the kernel and bias, so that one fused convolution runs. The output is in
  the variables' dtype whatever the input's.
  """

  def __init__(self, in_channels, out_channels, dtype, seed=None,
               name='zero_conv2d'):
    del seed  # Zero init is deterministic.
    super().__init__(name=name)
    self.kernel = tf.Variable(
        tf.zeros([3, 3, in_channels, out_channels], dtype), name='kernel')
    self.bias = tf.Variable(tf.zeros([out_channels], dtype), name='bias')
    self.logs = tf.Variable(tf.zeros([out_channels], dtype), name='logs')

  def __call__(self, x):
    return self._scaled_conv(x)

  def split_call(self, x):
    """`(h[..., 0::2], h[..., 1::2])` of `h = self(x)`, from one convolution."""
    channels = self.bias.shape[0]
    h = self._scaled_conv(x, order=_deinterleave(channels))
    return tf.split(h, [channels - channels // 2, channels // 2], axis=-1)

  def _scaled_conv(self, x, order=None):
    scale = tf.exp(3.0 * self.logs)
    kernel, bias = self.kernel * scale, self.bias * scale
    if order is not None:  # Gather tensors: a variable's would be sparse.
      kernel, bias = tf.gather(kernel, order, axis=-1), tf.gather(bias, order)
    h = _conv.conv2d(x, tf.cast(kernel, x.dtype))
    return tf.nn.bias_add(tf.cast(h, bias.dtype), bias)


class GlowConditioner(tf.Module):
  """The paper's coupling network.

  3x3 conv -> ActNorm -> ReLU -> 1x1 conv -> ActNorm -> ReLU -> ZeroConv2D
  (each conv and ActNorm pair a `ConvActNorm`),
  mapping `[N, H, W, in_channels]` to `[N, H, W, out_channels]`; its output is
  exactly zero until trained.

  With `compute_dtype` (`tf.bfloat16` or `tf.float16`, for mixed precision),
  the hidden layers compute in that dtype; the variables, the output layer
  and hence every log-det stay in `dtype`.
  """

  def __init__(self, in_channels, out_channels, *, hidden_channels,
               dtype=tf.float32, seed=None, compute_dtype=None,
               name='glow_conditioner'):
    super().__init__(name=name)
    self.compute_dtype = tf.as_dtype(compute_dtype or dtype)
    seeds = np.random.default_rng(seed).integers(2**31, size=2)
    self.conv_in = ConvActNorm(in_channels, hidden_channels, 3, dtype,
                               seeds[0], activation=tf.nn.relu)
    self.conv_hidden = ConvActNorm(hidden_channels, hidden_channels, 1, dtype,
                                   seeds[1], activation=tf.nn.relu)
    self.conv_out = ZeroConv2D(hidden_channels, out_channels, dtype)

  def __call__(self, x):
    return self.conv_out(self._hidden(x))

  def split_call(self, x: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """`(h[..., 0::2], h[..., 1::2])` of `h = self(x)`, without slicing."""
    return self.conv_out.split_call(self._hidden(x))

  def _hidden(self, x):
    return self.conv_hidden(self.conv_in(tf.cast(x, self.compute_dtype)))

  def data_init(self, x):
    """Initialises both ActNorms from the batch `x`; returns the output."""
    h = self.conv_in.data_init(tf.cast(x, self.compute_dtype))
    return self.conv_out(self.conv_hidden.data_init(h))


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
                     seed: Optional[int] = None) -> 'ZeroConv2D':
  """Factory of the split prior's network: one `ZeroConv2D` (openai/glow)."""
  return ZeroConv2D(in_channels, out_channels, dtype, seed)
