"""Invertible 1x1 convolution, plain or LU-decomposed (Glow section 3.2)."""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow.bijectors import _base

__all__ = ['InvertibleConv1x1', 'random_orthogonal', 'lu_decompose']


def random_orthogonal(channels: int, rng: np.random.Generator) -> np.ndarray:
  """A random orthogonal matrix: Q of the QR decomposition of a Gaussian."""
  q, r = np.linalg.qr(rng.normal(size=(channels, channels)))
  return q * np.sign(np.diag(r))


def lu_decompose(w: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """LU with partial pivoting: returns `(perm, lower, upper)`, `w == P L U`.

  `P` is the identity with its rows reordered by `perm`: `P = eye[perm]`, so
  `P @ m == m[perm]`. `lower` is unit lower triangular, `upper` upper
  triangular.
  """
  n = w.shape[0]
  upper = np.array(w, dtype=np.float64)
  lower = np.eye(n)
  order = np.arange(n)  # row order: upper/lower factor w[order]
  for k in range(n):
    pivot = k + int(np.argmax(np.abs(upper[k:, k])))
    upper[[k, pivot], k:] = upper[[pivot, k], k:]
    lower[[k, pivot], :k] = lower[[pivot, k], :k]
    order[[k, pivot]] = order[[pivot, k]]
    factors = upper[k + 1:, k] / upper[k, k]
    lower[k + 1:, k] = factors
    upper[k + 1:, k:] -= factors[:, None] * upper[k, k:]
  # w[order] = L U  =>  w = P L U with P = eye[argsort(order)].
  return np.argsort(order), lower, np.triu(upper)


class InvertibleConv1x1(_base.GlowBijector):
  """Learned channel mixing `z = W x` at every pixel (Glow section 3.2).

  Forward (sampling, z -> x) and inverse (the paper's f, x -> z), per pixel:

  ```none
  inverse:  z = W x
  forward:  x = W^-1 z
  ildj:     log|det W|     (per pixel; TFP sums over H and W)
  ```

  With `lu_decomposed=True` (the default), `W = P L (U + diag(sign * exp(log_s)))`
  with P a fixed permutation, L unit lower triangular and U strictly upper
  triangular, so `log|det W| = sum(log_s)` costs O(C), W can never become
  singular, and sampling uses triangular solves. The three trainable parts
  share one `[C, C]` variable, `lu` (openai/glow's packed LU): L's strict
  lower triangle below the diagonal, U's strict upper triangle above it and
  `log_s` on it; each mask's gradient is zero where the others live, and Adam
  treats every element alone, so training is the same as with three
  variables, at a third of the optimizer's per-variable work and trace.
  With `lu_decomposed=False`,
  W is a free matrix: the log-det is one `slogdet` per call (float64) and
  sampling inverts W. Either way W starts as a random orthogonal matrix
  (log-det 0). The permutation and signs are non-trainable variables, so a
  restored model is the same model whatever seed built it.

  Args:
    channels: Python `int`, the number of channels C.
    lu_decomposed: Python `bool`. Default value: `True`.
    seed: Python `int` or `None`, seeds the orthogonal init. Default value:
      `None`.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'invertible_conv1x1'`.

  Raises:
    TypeError, ValueError: if `channels` is not a positive int.

  #### Examples

  >>> conv = InvertibleConv1x1(channels=4, seed=0)
  >>> x = tf.random.normal([2, 8, 8, 4], seed=1)
  >>> bool(tf.reduce_all(tf.abs(conv.forward(conv.inverse(x)) - x) < 1e-5))
  True

  #### References

  [1]: Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with
       Invertible 1x1 Convolutions. NeurIPS 2018.
       https://arxiv.org/abs/1807.03039
  """

  def __init__(self, channels: int, lu_decomposed: bool = True,
               seed: Optional[int] = None, dtype: tf.DType = tf.float32,
               validate_args: bool = False, name: str = 'invertible_conv1x1'):
    parameters = dict(locals())
    channels = _validation.positive_int('channels', channels)
    if not isinstance(lu_decomposed, bool):
      raise TypeError(f'`lu_decomposed` must be a bool; got {lu_decomposed!r}.')
    dtype = _validation.float_dtype(dtype)
    self._channels = channels
    self._lu_decomposed = lu_decomposed
    w = random_orthogonal(channels, np.random.default_rng(seed))
    with tf.name_scope(name) as name:
      if lu_decomposed:
        self._make_lu_variables(w, dtype)
      else:
        self._weight = tf.Variable(w.astype(dtype.as_numpy_dtype), name='weight')
      super().__init__(
          forward_min_event_ndims=1, is_constant_jacobian=True,
          validate_args=validate_args, dtype=dtype, parameters=parameters,
          name=name)

  def _make_lu_variables(self, w, dtype):
    perm, lower, upper = lu_decompose(w)
    diag = np.diag(upper)
    np_dtype = dtype.as_numpy_dtype
    self._permutation = tf.Variable(
        perm.astype(np.int32), trainable=False, name='permutation')
    self._sign = tf.Variable(
        np.sign(diag).astype(np_dtype), trainable=False, name='sign')
    packed = (np.tril(lower, -1) + np.triu(upper, 1)
              + np.diag(np.log(np.abs(diag))))
    self._lu = tf.Variable(packed.astype(np_dtype), name='lu')

  @property
  def lu_decomposed(self) -> bool:
    return self._lu_decomposed

  def _lu_factors(self):
    """The masked factors: unit lower L and upper U with the learned diagonal."""
    lower = tf.linalg.set_diag(tf.linalg.band_part(self._lu, -1, 0),
                               tf.ones([self._channels], self.dtype))
    upper = tf.linalg.set_diag(tf.linalg.band_part(self._lu, 0, -1),
                               self._sign * tf.exp(self._log_s()))
    return lower, upper

  def _log_s(self):
    """log|s|, the diagonal of the packed `lu`."""
    return tf.linalg.diag_part(self._lu)

  def weight(self) -> tf.Tensor:
    """The matrix W of the inverse direction, `z = W x`."""
    if not self._lu_decomposed:
      return tf.convert_to_tensor(self._weight)
    lower, upper = self._lu_factors()
    # P (L U) as a matmul by P = one_hot(perm) = eye[perm], exact (one 1 per
    # row): its gradient is one matmul, where a row gather's turns sparse
    # slices dense twice (18 graph ops more per flow step).
    return tf.matmul(self._permutation_matrix(), tf.matmul(lower, upper))

  def inverse_weight(self) -> tf.Tensor:
    """W^-1, by two triangular solves (LU) or a matrix inverse (plain)."""
    if not self._lu_decomposed:
      return tf.linalg.inv(self._weight)
    lower, upper = self._lu_factors()
    # W = P L U  =>  W^-1 = U^-1 L^-1 P^T, and P^T = eye[:, perm].
    p_transpose = self._permutation_matrix(transpose=True)
    l_inv_pt = tf.linalg.triangular_solve(lower, p_transpose, lower=True)
    return tf.linalg.triangular_solve(upper, l_inv_pt, lower=False)

  def _permutation_matrix(self, transpose=False):
    """P = eye[perm], or P^T = eye[:, perm], as one op."""
    return tf.one_hot(self._permutation, self._channels, axis=0 if transpose
                      else -1, dtype=self.dtype)

  def _log_abs_det_weight(self):
    if self._lu_decomposed:
      return tf.reduce_sum(self._log_s())
    _, log_abs_det = tf.linalg.slogdet(tf.cast(self._weight, tf.float64))
    return tf.cast(log_abs_det, self.dtype)

  def _mix(self, x, w):
    """`w @ x[..., :]` at every pixel, as one [pixels, C] x [C, C] matmul."""
    flat = tf.reshape(x, [-1, self._channels])
    return tf.reshape(tf.matmul(flat, w, transpose_b=True), tf.shape(x))

  def _forward(self, z):
    return self._mix(z, self.inverse_weight())

  def _inverse(self, x):
    return self._mix(x, self.weight())

  def _forward_log_det_jacobian(self, z):
    return -self._log_abs_det_weight()

  def _inverse_log_det_jacobian(self, x):
    return self._log_abs_det_weight()
