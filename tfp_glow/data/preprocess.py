"""Per-image preprocessing: bit reduction, crops, resizing, padding, flips.

Every function maps one uint8 image `[H, W, C]` to one uint8 image; the random
ones are stateless (`tf.image.stateless_*`), so an image's augmentation is a
pure function of its seed.
"""

from typing import Optional

import tensorflow as tf

__all__ = ['reduce_bits', 'center_crop', 'resize', 'pad_to', 'random_flip',
           'random_crop']

TensorLike = tf.types.experimental.TensorLike


def reduce_bits(images: TensorLike, num_bits: int) -> tf.Tensor:
  """Keeps the `num_bits` most significant bits: `floor(x / 2**(8 - num_bits))`.

  As openai/glow's preprocessing: 8-bit pixels become integers in
  `[0, 2**num_bits)`, in the input's dtype.

  Args:
    images: uint8 (or any int) pixels in `[0, 256)`.
    num_bits: Python `int` in [1, 8].

  Returns:
    Integer pixels in `[0, 2**num_bits)`, of the dtype of `images`.

  #### Examples

  >>> reduce_bits(tf.constant([0, 7, 8, 255], tf.uint8), num_bits=5).numpy()
  array([ 0,  0,  1, 31], dtype=uint8)
  """
  images = tf.convert_to_tensor(images)
  if num_bits == 8:
    return images
  return images // tf.cast(2**(8 - num_bits), images.dtype)


def center_crop(image: tf.Tensor, size: Optional[int] = None) -> tf.Tensor:
  """The centred `size x size` square of `image` (default: the largest one).

  >>> center_crop(tf.zeros([218, 178, 3], tf.uint8), 148).shape
  TensorShape([148, 148, 3])
  """
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  side = tf.minimum(height, width) if size is None else tf.constant(size)
  top = (height - side) // 2
  left = (width - side) // 2
  return image[top:top + side, left:left + side]


def resize(image: tf.Tensor, size: int) -> tf.Tensor:
  """Resizes to `size x size` (bilinear, antialiased), rounded back to uint8.

  Returns `image` itself when it already has that size, so that resizing is
  a no-op on data stored at the target size.

  >>> int(tf.reduce_max(resize(tf.fill([8, 8, 1], tf.constant(200, tf.uint8)), 4)))
  200
  """
  shape = tf.shape(image)

  def _resize():
    x = tf.image.resize(tf.cast(image, tf.float32), [size, size],
                        method='bilinear', antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), image.dtype)

  same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
  out = tf.cond(same, lambda: tf.identity(image), _resize)
  return tf.ensure_shape(out, [size, size, image.shape[-1]])


def pad_to(image: tf.Tensor, size: int) -> tf.Tensor:
  """Pads with zeros, centred, to `size x size` (openai pads MNIST 28 -> 32).

  >>> x = pad_to(tf.ones([28, 28, 1], tf.uint8), 32)
  >>> x.shape, int(tf.reduce_sum(tf.cast(x, tf.int32))), int(x[1, 1, 0])
  (TensorShape([32, 32, 1]), 784, 0)
  """
  height, width = image.shape[0], image.shape[1]
  top, left = (size - height) // 2, (size - width) // 2
  return tf.pad(image, [[top, size - height - top],
                        [left, size - width - left], [0, 0]])


def random_flip(image: tf.Tensor, seed: TensorLike) -> tf.Tensor:
  """Flips left-right with probability 1/2; `seed` is a stateless seed [2]."""
  return tf.image.stateless_random_flip_left_right(image, seed=seed)


def random_crop(image: tf.Tensor, size: int, seed: TensorLike) -> tf.Tensor:
  """A uniformly placed `size x size` crop; `seed` is a stateless seed [2]."""
  channels = image.shape[-1]
  return tf.image.stateless_random_crop(image, [size, size, channels],
                                        seed=seed)
