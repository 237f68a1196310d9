"""Affine coupling layer (Glow section 3.3, openai/glow's layout)."""

from typing import Optional, Sequence

import tensorflow as tf

from tfp_glow import nn
from tfp_glow.bijectors import _coupling

__all__ = ['AffineCoupling']


class AffineCoupling(_coupling.Coupling):
  """Affine coupling: scale and shift half the channels given the other half.

  Forward (sampling, z -> x) and inverse (the paper's f, x -> z), with the
  channels split in halves `[..., :C // 2]` and `[..., C // 2:]`:

  ```none
  h               = net(x1)                        (x1 = z1)
  shift, log_s    = h[..., 0::2], log(sigmoid(h[..., 1::2] + 2))
  inverse:  z2    = (x2 + shift) * exp(log_s)
  forward:  x2    = z2 * exp(-log_s) - shift
  ildj            = sum over H, W, C/2 of log_s
  ```

  This is openai/glow's layout (shift first, then a sigmoid scale; even output
  channels shift, odd ones scale). The sigmoid bounds the scale to (0, 1) in
  the density direction, which keeps deep models stable. With the default
  conditioner, `h` is exactly 0 at init, so the layer starts as the identity
  up to the constant scale sigmoid(2) = 0.88.

  Args:
    channels: Python `int` >= 2, the number of channels C.
    conditioner_fn: factory `fn(in_channels, out_channels, *, dtype, seed)`
      returning the network; called once with `(C // 2, 2 * (C - C // 2))`.
      Default value: `nn.glow_conditioner(512)`, the paper's network.
    seed: Python `int` or `None`, seeds the network init. Default value: `None`.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'affine_coupling'`.
    parameters: Python `dict` or `None`: a subclass passes its own
      `dict(locals())`, so that `copy()` calls the subclass's constructor (as
      in `tfb.Chain`). Default value: `None` (this constructor's arguments).
    context_shape: `None`, `(D,)` or `(H, W, c)`: a conditional layer, every
      call of which takes `context=` of shape `[..., *context_shape]` (batch
      shape that of the input), read by the network only. Default value:
      `None`.

  Raises:
    TypeError, ValueError: if `channels` is not an int >= 2 or
      `conditioner_fn` is not callable.

  #### Examples

  >>> layer = AffineCoupling(4, nn.glow_conditioner(hidden_channels=8), seed=0)
  >>> x = tf.random.normal([2, 8, 8, 4], seed=1)
  >>> layer.inverse_log_det_jacobian(x, event_ndims=3).shape
  TensorShape([2])

  #### References

  [1]: Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with
       Invertible 1x1 Convolutions. NeurIPS 2018.
       https://arxiv.org/abs/1807.03039
  """

  def __init__(self, channels: int,
               conditioner_fn: Optional[nn.ConditionerFn] = None,
               seed: Optional[int] = None, dtype: tf.DType = tf.float32,
               validate_args: bool = False, name: str = 'affine_coupling',
               parameters: Optional[dict] = None,
               context_shape: Optional[Sequence[int]] = None):
    parameters = dict(locals()) if parameters is None else parameters
    super().__init__(
        channels, conditioner_fn or nn.glow_conditioner(512), 2,
        is_constant_jacobian=False, seed=seed, dtype=dtype,
        validate_args=validate_args, parameters=parameters, name=name,
        context_shape=context_shape)

  def _shift_and_log_scale(self, h_even, h_odd):
    return h_even, tf.math.log_sigmoid(h_odd + 2.0)

  def _transform(self, x1, x2, direction, context):
    shift, log_scale = self._shift_and_log_scale(
        *self._param_pairs(x1, context))
    if direction == 'inverse':
      out = (x2 + shift) * tf.exp(log_scale)
    else:
      out = x2 * tf.exp(-log_scale) - shift
    ildj = tf.reduce_sum(log_scale, axis=[-3, -2, -1])
    return tf.concat([x1, out], axis=-1), {'ildj': ildj}

  def _augmented_forward(self, z, context=None):
    return self._transform(*self._halves(z), 'forward', context)

  def _augmented_inverse(self, x, context=None):
    return self._transform(*self._halves(x), 'inverse', context)

  def _forward_log_det_jacobian(self, z, context=None):
    return -self._augmented_forward(z, context)[1]['ildj']

  def _inverse_log_det_jacobian(self, x, context=None):
    return self._augmented_inverse(x, context)[1]['ildj']
