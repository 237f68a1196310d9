"""ActNorm: per-channel affine layer with data-dependent initialisation."""

import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import nn
from tfp_glow.bijectors import _base

__all__ = ['ActNorm']


class ActNorm(_base.GlowBijector):
  """Per-channel scale and bias, initialised from data (Glow section 3.1).

  Forward (sampling, z -> x) and inverse (the paper's f, x -> z), per pixel:

  ```none
  forward:  x = z * exp(log_scale) + loc
  inverse:  z = (x - loc) * exp(-log_scale)
  fldj:     sum_c log_scale[c]            (per pixel; TFP sums over H and W)
  ```

  Events are channel vectors (`forward_min_event_ndims=1`), so any
  `[..., H, W, C]` input works. The layer is the identity until `data_init`
  sets `loc` and `log_scale` so that the inverse output has per-channel mean 0
  and std 1 on an initialisation batch. That state lives in the non-trainable
  variable `initialized`: the init runs once, is idempotent, and is never
  repeated after a checkpoint restore.

  Both parameters live in one `[2, C]` variable, `loc_and_log_scale` (row 0
  `loc`, row 1 `log_scale`): an optimizer's work and a step's trace grow with
  the number of variables, not their size, and Adam treats every element
  alone, so training is the same as with two.

  Args:
    channels: Python `int`, the number of channels C.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'act_norm'`.

  Raises:
    TypeError, ValueError: if `channels` is not a positive int.

  #### Examples

  >>> layer = ActNorm(channels=3)
  >>> x = tf.random.normal([64, 4, 4, 3], mean=5.0, stddev=2.0, seed=1)
  >>> z = layer.data_init(x)
  >>> bool(tf.reduce_all(tf.abs(tf.math.reduce_std(z, [0, 1, 2]) - 1) < 1e-3))
  True

  #### References

  [1]: Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with
       Invertible 1x1 Convolutions. NeurIPS 2018.
       https://arxiv.org/abs/1807.03039
  """

  def __init__(self, channels: int, dtype: tf.DType = tf.float32,
               validate_args: bool = False, name: str = 'act_norm'):
    parameters = dict(locals())
    channels = _validation.positive_int('channels', channels)
    dtype = _validation.float_dtype(dtype)
    with tf.name_scope(name) as name:
      self._loc_and_log_scale = tf.Variable(
          tf.zeros([2, channels], dtype), name='loc_and_log_scale')
      self._initialized = tf.Variable(
          False, trainable=False, name='initialized')
      super().__init__(
          forward_min_event_ndims=1, is_constant_jacobian=True,
          validate_args=validate_args, dtype=dtype, parameters=parameters,
          name=name)

  @property
  def loc_and_log_scale(self) -> tf.Variable:
    """The `[2, C]` trainable variable: rows `loc` and `log_scale`."""
    return self._loc_and_log_scale

  @property
  def loc(self) -> tf.Tensor:
    """`[C]` shift, row 0 of `loc_and_log_scale`."""
    return self._loc_and_log_scale[0]

  @property
  def log_scale(self) -> tf.Tensor:
    """`[C]` log scale, row 1 of `loc_and_log_scale`."""
    return self._loc_and_log_scale[1]

  @property
  def initialized(self) -> tf.Variable:
    """Non-trainable boolean variable: has `data_init` run."""
    return self._initialized

  def data_init(self, x: tf.Tensor) -> tf.Tensor:
    """Initialises from the data-side batch `x` (once); returns `inverse(x)`."""
    nn.actnorm_data_init(x, self._loc_and_log_scale, self._initialized)
    return self.inverse(x)

  def _forward(self, z):
    loc, log_scale = tf.unstack(self._loc_and_log_scale)
    return z * tf.exp(log_scale) + loc

  def _inverse(self, x):
    loc, log_scale = tf.unstack(self._loc_and_log_scale)
    return (x - loc) * tf.exp(-log_scale)

  def _forward_log_det_jacobian(self, z):
    return tf.reduce_sum(self.log_scale)

  def _inverse_log_det_jacobian(self, x):
    return -tf.reduce_sum(self.log_scale)
