"""Turning samples into pictures: 8-bit pixels, grids and PNG files."""

import math
import os

import numpy as np
import tensorflow as tf

__all__ = ['to_uint8', 'image_grid', 'save_png_grid']


def to_uint8(x, num_bits=8):
  """Pixel-space values in `[0, 2**num_bits)` to displayable 8-bit pixels.

  As openai/glow's `postprocess`: `clip(floor(x) * 256 / 2**num_bits, 0, 255)`.

  >>> to_uint8(tf.constant([-3.0, 0.7, 31.9, 40.0]), num_bits=5).numpy()
  array([  0,   0, 248, 255], dtype=uint8)
  """
  x = tf.floor(tf.cast(x, tf.float32)) * (256.0 / 2**num_bits)
  return tf.cast(tf.clip_by_value(x, 0.0, 255.0), tf.uint8)


def image_grid(images, rows=None, padding=1):
  """Tiles `[N, H, W, C]` uint8 images into one `[H', W', C]` image.

  Args:
    images: uint8 `[N, H, W, C]`, C in {1, 3}.
    rows: number of rows; default `ceil(sqrt(N))`.
    padding: pixels of black between tiles.

  Returns:
    A uint8 numpy array `[rows * (H + p) - p, cols * (W + p) - p, C]`.

  >>> image_grid(np.zeros([5, 4, 4, 1], np.uint8), rows=2).shape
  (9, 14, 1)
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError('`images` must be uint8 [N, H, W, C]; got '
                     f'{images.dtype} of shape {images.shape}.')
  n, h, w, c = images.shape
  rows = rows or max(1, math.ceil(math.sqrt(n)))
  cols = math.ceil(n / rows)
  grid = np.zeros([rows * (h + padding) - padding,
                   cols * (w + padding) - padding, c], np.uint8)
  for i in range(n):
    top, left = (i // cols) * (h + padding), (i % cols) * (w + padding)
    grid[top:top + h, left:left + w] = images[i]
  return grid


def save_png_grid(path, images, num_bits=8, rows=None):
  """Writes pixel-space `images` `[N, H, W, C]` as one PNG grid at `path`.

  Returns:
    `path`.
  """
  grid = image_grid(to_uint8(images, num_bits).numpy(), rows)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tf.io.write_file(path, tf.io.encode_png(grid))
  return path
