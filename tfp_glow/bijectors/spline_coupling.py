"""Rational-quadratic spline coupling (Durkan et al. 2019, RQ-NSF)."""

import math
from typing import Optional, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow import _validation
from tfp_glow import nn
from tfp_glow.bijectors import _coupling

__all__ = ['SplineCoupling']

# Lower bounds of a bin's width and height (as a fraction of the interval)
# and of a knot's slope: TFP's own example values. They keep every bin
# invertible and the log-det finite however far the network's output moves.
_MIN_BIN = 1e-3
_MIN_SLOPE = 1e-3
# softplus(_SLOPE_SHIFT) + _MIN_SLOPE = 1: a zero network output gives unit
# slopes, so with equal bins the spline is the identity at init.
_SLOPE_SHIFT = math.log(math.expm1(1.0 - _MIN_SLOPE))


class SplineCoupling(_coupling.Coupling):
  """Coupling by a monotone rational-quadratic spline, per transformed value.

  The second channel half is transformed elementwise by TFP's
  `tfb.RationalQuadraticSpline`: `num_bins` bins on `[-bound, bound]`,
  the identity outside (linear tails, as RQ-NSF). Its bin widths, heights
  and interior knot slopes come from the conditioner network applied to the
  first half (and the context, in a conditional layer):

  ```none
  h                    = net(x1)       (3 * num_bins - 1 values per channel)
  widths, heights      = softmax(h_w), softmax(h_h), scaled to 2 * bound
                         with every bin at least 1e-3 of it
  slopes               = softplus(h_s + log(e - 1)) + 1e-3 (interior knots)
  inverse:  z2         = spline(x2)                 (the paper's f)
  forward:  x2         = spline^-1(z2)              (sampling, analytic)
  ildj                 = sum over H, W, C/2 of log spline'(x2)
  ```

  With the default conditioner, `h` is exactly 0 at init: equal bins and
  unit slopes, so the layer starts as the identity (log-det 0).

  Args:
    channels: Python `int` >= 2, the number of channels C.
    conditioner_fn: factory `fn(in_channels, out_channels, *, dtype, seed)`;
      called once with `(C // 2, (3 * num_bins - 1) * (C - C // 2))`.
      Default value: `nn.glow_conditioner(512)`.
    num_bins: Python `int` >= 2, the spline's bins K. Default value: `8`.
    bound: Python `float` > 0, the spline acts on `[-bound, bound]`.
      Default value: `3.0` (after ActNorm, values are about unit-scale).
    seed: Python `int` or `None`. Default value: `None`.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'spline_coupling'`.
    context_shape: `None`, `(D,)` or `(H, W, c)`: a conditional layer (see
      `AffineCoupling`). Default value: `None`.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> layer = SplineCoupling(4, nn.glow_conditioner(hidden_channels=8), seed=0)
  >>> x = tf.random.normal([2, 8, 8, 4], seed=1)
  >>> float(tf.reduce_max(tf.abs(layer.inverse(x) - x))) < 1e-5  # identity
  True

  #### References

  [1]: Conor Durkan, Artur Bekasov, Iain Murray, George Papamakarios. Neural
       Spline Flows. NeurIPS 2019. https://arxiv.org/abs/1906.04032
  """

  def __init__(self, channels: int,
               conditioner_fn: Optional[nn.ConditionerFn] = None,
               num_bins: int = 8, bound: float = 3.0,
               seed: Optional[int] = None, dtype: tf.DType = tf.float32,
               validate_args: bool = False, name: str = 'spline_coupling',
               context_shape: Optional[Sequence[int]] = None):
    parameters = dict(locals())
    self._num_bins = _validation.positive_int('num_bins', num_bins, minimum=2)
    self._bound = _validation.positive_float('bound', bound)
    super().__init__(
        channels, conditioner_fn or nn.glow_conditioner(512),
        3 * self._num_bins - 1, is_constant_jacobian=False, seed=seed,
        dtype=dtype, validate_args=validate_args, parameters=parameters,
        name=name, context_shape=context_shape)

  @property
  def num_bins(self) -> int:
    return self._num_bins

  @property
  def bound(self) -> float:
    return self._bound

  def _spline(self, x1, context):
    """The `tfb.RationalQuadraticSpline` of each transformed value."""
    h = self._params(x1, context)
    k = self._num_bins
    h = tf.reshape(h, tf.concat([tf.shape(h)[:-1], [-1, 3 * k - 1]], 0))
    h_w, h_h, h_s = tf.split(h, [k, k, k - 1], axis=-1)
    width = 2.0 * self._bound

    def bins(logits):
      # Flattened: the CPU softmax kernel takes at most rank 5, and a batch
      # of K dequantization draws `[K, N, H, W, C, k]` has rank 6.
      probs = tf.reshape(tf.math.softmax(tf.reshape(logits, [-1, k])),
                         tf.shape(logits))
      return probs * (width * (1.0 - k * _MIN_BIN)) + width * _MIN_BIN

    slopes = tf.math.softplus(h_s + _SLOPE_SHIFT) + _MIN_SLOPE
    return tfp.bijectors.RationalQuadraticSpline(
        bins(h_w), bins(h_h), slopes, range_min=-self._bound)

  def _augmented_inverse(self, x, context=None):
    x1, x2 = self._halves(x)
    spline = self._spline(x1, context)
    z2 = spline.forward(x2)
    ildj = tf.reduce_sum(spline.forward_log_det_jacobian(x2, 0),
                         axis=[-3, -2, -1])
    return tf.concat([x1, z2], axis=-1), {'ildj': ildj}

  def _augmented_forward(self, z, context=None):
    z1, z2 = self._halves(z)
    spline = self._spline(z1, context)
    x2 = spline.inverse(z2)
    fldj = tf.reduce_sum(spline.inverse_log_det_jacobian(z2, 0),
                         axis=[-3, -2, -1])
    return tf.concat([z1, x2], axis=-1), {'ildj': -fldj}

  def _forward_log_det_jacobian(self, z, context=None):
    return -self._augmented_forward(z, context)[1]['ildj']

  def _inverse_log_det_jacobian(self, x, context=None):
    return self._augmented_inverse(x, context)[1]['ildj']
