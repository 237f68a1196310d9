"""Counter-based U[0, 1) dequantization noise, the same with and without XLA.

`uniform(shape, seed, offset)` is a pure function of its arguments: element
`i` (in row-major order) is a hash of `(seed, offset + i)`. So a run resumed
from a checkpoint draws the same noise as an uninterrupted one (the seed holds
the optimizer step), and replica `r` of `R` can draw exactly its slice of the
global batch's noise by passing `offset = r * size_of_its_slice`.
"""

from typing import Sequence

import tensorflow as tf

from tfp_glow.training import _distribute

__all__ = ['uniform', 'dequantize']

TensorLike = tf.types.experimental.TensorLike

_GOLDEN = 0x9E3779B9


def _fmix32(h):
  """MurmurHash3's 32-bit finalizer (a bijective avalanche mix of uint32)."""
  def xorshift(h, bits):
    return tf.bitwise.bitwise_xor(
        h, tf.bitwise.right_shift(h, tf.constant(bits, tf.uint32)))
  h = xorshift(h, 16) * tf.constant(0x85EBCA6B, tf.uint32)
  h = xorshift(h, 13) * tf.constant(0xC2B2AE35, tf.uint32)
  return xorshift(h, 16)


def uniform(shape: TensorLike, seed: Sequence[TensorLike], offset: TensorLike,
            dtype: tf.DType) -> tf.Tensor:
  """U[0, 1) noise of `shape`: element i is a hash of `(seed, offset + i)`.

  Counter-based, in plain integer ops, so it gives the same numbers with and
  without XLA (`tf.random.stateless_uniform` does not: under `jit_compile` it
  draws other numbers for the same seed).

  Args:
    shape: int `Tensor` or list, the output shape.
    seed: pair of Python ints or int scalars `(s0, s1)`.
    offset: int scalar, the counter of the first element.
    dtype: float dtype of the output.

  Returns:
    `Tensor` of `shape` and `dtype`, values in `[0, 1)` on a 2**-24 grid.

  #### Examples

  ```python
  u = uniform([4, 8, 8, 1], (0, 5), 0, tf.float32)
  tail = uniform([2, 8, 8, 1], (0, 5), 2 * 64, tf.float32)   # == u[2:]
  ```
  """
  seed0, seed1 = (tf.cast(tf.cast(s, tf.int64), tf.uint32) for s in seed)
  golden = tf.constant(_GOLDEN, tf.uint32)
  key = _fmix32(tf.bitwise.bitwise_xor(_fmix32(seed0 * golden + 1), seed1))
  index = tf.range(tf.reduce_prod(tf.cast(shape, tf.int64)), dtype=tf.int64)
  counter = tf.cast(index + tf.cast(offset, tf.int64), tf.uint32)
  h = _fmix32(tf.bitwise.bitwise_xor(_fmix32(counter * golden), key) + key)
  top24 = tf.bitwise.right_shift(h, tf.constant(8, tf.uint32))
  u = tf.cast(top24, tf.float32) * (2.0**-24)
  return tf.reshape(tf.cast(u, dtype), shape)


def dequantize(images: TensorLike, seed: Sequence[TensorLike], dtype: tf.DType,
               global_batch: bool = False) -> tf.Tensor:
  """`images + u`, `u ~ U[0, 1)` a pure function of `seed` (see `uniform`).

  Args:
    images: integer pixel values `[N, H, W, C]`, any int or float dtype.
    seed: pair `(s0, s1)` of ints or int scalars.
    dtype: float dtype of the result.
    global_batch: Python `bool`; if True, in replica context of a strategy
      with R replicas, replica r takes slice r of the noise of the global
      batch, so an evenly split batch gets the same noise for any R.

  Returns:
    `Tensor` of `images`' shape and `dtype`.
  """
  images = tf.cast(images, dtype)
  offset = tf.constant(0, tf.int64)
  if global_batch:
    offset = _distribute.replica_offset(tf.size(images, out_type=tf.int64))
  return images + uniform(tf.shape(images), seed, offset, dtype)
