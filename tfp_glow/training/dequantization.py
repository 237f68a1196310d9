"""The bound a `GlowModel` trains and reports: uniform or variational noise.

```none
uniform      bits = -log p(x + u) / (D ln 2),                u ~ U[0, 1)^D
variational  bits = -(log p(x + u) - log q(u | x)) / (D ln 2), u ~ q(u | x)
K samples    bits = -log((1/K) sum_k p(x + u_k) / q(u_k | x)) / (D ln 2)
```

(q = 1 for the uniform noise.) Each bounds the discrete model's
`-log P(x) / (D ln 2)` from above; the K-sample one is the importance-weighted
bound, tighter as K grows. The training noise is counter-based
(`noise.uniform`), so a resumed run and an evenly split batch draw the same
noise as an uninterrupted run on one replica; q's Gaussian noise is the same
counter noise through the normal's inverse CDF.
"""

import math
from typing import Optional, Sequence

import tensorflow as tf

from tfp_glow.dequantizer import VariationalDequantizer
from tfp_glow.glow import Glow
from tfp_glow.training import _distribute
from tfp_glow.training import noise

__all__ = ['bits_per_dim', 'importance_weighted_bits_per_dim',
           'counter_normal', 'normal_of_grid_uniform', 'global_batch_normal']

TensorLike = tf.types.experimental.TensorLike


def counter_normal(shape: TensorLike, seed: Sequence[TensorLike],
                   offset: TensorLike, dtype: tf.DType) -> tf.Tensor:
  """N(0, 1) noise, a pure function of `(seed, offset + i)` as `noise.uniform`.

  The inverse CDF of the counter uniform (see `normal_of_grid_uniform`).
  """
  return normal_of_grid_uniform(noise.uniform(shape, seed, offset, tf.float64),
                                dtype)


def normal_of_grid_uniform(u: TensorLike, dtype: tf.DType) -> tf.Tensor:
  """The normal's inverse CDF at the middle of `u`'s 2**-24 grid cell.

  `u` holds multiples of 2**-24 in [0, 1); the midpoint `u + 2**-25` is never
  0 or 1, so the values are finite, within +-5.4 (the tails beyond carry
  probability 7e-8). In float64: in float32 the top cell's midpoint,
  1 - 2**-25, rounds to 1.0, whose inverse CDF is +inf (which once made the
  variational bound NaN after 664 training steps).
  """
  u = tf.cast(u, tf.float64) + 2.0**-25
  return tf.cast(tf.math.ndtri(u), dtype)


def global_batch_normal(dequantizer: VariationalDequantizer,
                        images: tf.Tensor, seed: Sequence[TensorLike],
                        dtype: tf.DType) -> tf.Tensor:
  """q's latent noise `[N, *latent_shape]` for `images`, global-batch sliced.

  In replica context of R > 1 replicas, replica r draws slice r of the
  global batch's noise (as `noise.dequantize(..., global_batch=True)`).
  """
  shape = tf.concat([tf.shape(images)[:1], dequantizer.latent_shape], 0)
  offset = _distribute.replica_offset(tf.reduce_prod(tf.cast(shape, tf.int64)))
  return counter_normal(shape, seed, offset, dtype)


def bits_per_dim(glow: Glow, dequantizer: Optional[VariationalDequantizer],
                 images: TensorLike, seed: Sequence[TensorLike], *,
                 labels: Optional[TensorLike] = None,
                 context: Optional[TensorLike] = None) -> tf.Tensor:
  """The single-sample bound in bits/dim per image, `[N]` (see the module).

  Args:
    glow: the model's Glow.
    dequantizer: its `VariationalDequantizer`, or `None` for uniform noise.
    images: integer pixel values `[N, H, W, C]` (already checked).
    seed: pair `(s0, s1)`: the noise is a pure function of it.
    labels, context: the Glow's, or `None`.
  """
  if dequantizer is None:
    x = noise.dequantize(images, seed, glow.dtype, global_batch=True)
    log_p = glow.log_prob(x, labels=labels, context=context)
    return _to_bits(glow, log_p)
  images = tf.cast(images, glow.dtype)
  eps = global_batch_normal(dequantizer, images, seed, glow.dtype)
  u, log_q = dequantizer.from_noise(eps, images)
  log_p = glow.log_prob(images + u, labels=labels, context=context)
  return _to_bits(glow, log_p - log_q)


def importance_weighted_bits_per_dim(
    glow: Glow, dequantizer: Optional[VariationalDequantizer],
    images: TensorLike, num_samples: int, seed: Sequence[TensorLike], *,
    labels: Optional[TensorLike] = None,
    context: Optional[TensorLike] = None) -> tf.Tensor:
  """The K-sample importance-weighted bound per image, `[N]`.

  The proposal is the model's dequantization noise (uniform, or q). K = 1 is
  the single-sample bound. The K draws run as one batch of K * N images.
  """
  if dequantizer is None:
    return glow.bits_per_dim(images, labels=labels, context=context,
                             seed=seed, num_samples=num_samples)
  return dequantizer.bits_per_dim(glow, images, num_samples=num_samples,
                                  seed=seed, labels=labels, context=context)


def _to_bits(glow, log_density):
  return -log_density / (glow.num_dims * math.log(2.0))
