"""Turning samples into pictures: 8-bit pixels, grids and PNG files.

Grids are upscaled by an integer factor, nearest neighbour (each pixel
becomes a `scale x scale` block), so that small images stay readable: by
default tiles are at least `MIN_TILE_HEIGHT` (96) pixels high, e.g. 28x28
MNIST digits x4, 32x32 CIFAR-10 images x3, 64x64 CelebA faces x2.
"""

import math
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tfp_glow import _validation

__all__ = ['MIN_TILE_HEIGHT', 'to_uint8', 'grid_scale', 'image_grid',
           'save_png_grid']

# Tiles of the default grids are at least this many pixels high: a 28-pixel
# digit shown at 1:1 is too small to judge on a modern screen.
MIN_TILE_HEIGHT = 96

TensorLike = tf.types.experimental.TensorLike


def to_uint8(x: TensorLike, num_bits: int = 8) -> tf.Tensor:
  """Pixel-space values in `[0, 2**num_bits)` to displayable 8-bit pixels.

  As openai/glow's `postprocess`: `clip(floor(x) * 256 / 2**num_bits, 0, 255)`.

  >>> to_uint8(tf.constant([-3.0, 0.7, 31.9, 40.0]), num_bits=5).numpy()
  array([  0,   0, 248, 255], dtype=uint8)
  """
  x = tf.floor(tf.cast(x, tf.float32)) * (256.0 / 2**num_bits)
  return tf.cast(tf.clip_by_value(x, 0.0, 255.0), tf.uint8)


def grid_scale(height: int, scale: Optional[int] = None) -> int:
  """The nearest-neighbour factor of a grid of tiles `height` pixels high.

  Args:
    height: Python `int`, the height of one image (tile) in pixels.
    scale: `None` for the smallest factor that makes a tile at least
      `MIN_TILE_HEIGHT` pixels high, `max(1, ceil(96 / height))`; or a
      Python `int` >= 1, returned as is. Default value: `None`.

  Returns:
    A Python `int` >= 1.

  Raises:
    TypeError: if `scale` is neither `None` nor an int.
    ValueError: if `scale` is < 1.

  >>> [grid_scale(h) for h in (8, 28, 32, 64, 96, 256)]
  [12, 4, 3, 2, 1, 1]
  >>> grid_scale(28, scale=1)
  1
  """
  if scale is not None:
    return _validation.positive_int('scale', scale)
  return max(1, math.ceil(MIN_TILE_HEIGHT / height))


def image_grid(images: TensorLike, rows: Optional[int] = None,
               padding: int = 1, scale: Optional[int] = None) -> np.ndarray:
  """Tiles `[N, H, W, C]` uint8 images into one `[H', W', C]` image.

  The tiles, `padding` pixels of black apart, are laid out row by row; then
  the whole grid is upscaled `scale` times, nearest neighbour, so that each
  pixel becomes a `scale x scale` block and the gaps stay in proportion.

  Args:
    images: uint8 `[N, H, W, C]`, C in {1, 3}.
    rows: number of rows; default `ceil(sqrt(N))`.
    padding: pixels of black between tiles, before upscaling.
    scale: `None` for tiles at least `MIN_TILE_HEIGHT` pixels high (see
      `grid_scale`), or a Python `int` >= 1. Default value: `None`.

  Returns:
    A uint8 numpy array `[(rows * (H + p) - p) * s, (cols * (W + p) - p) * s,
    C]`, with `p = padding`, `s` the scale and `cols = ceil(N / rows)`.

  Raises:
    ValueError: if `images` are not uint8 `[N, H, W, C]`, or `scale` < 1.
    TypeError: if `scale` is neither `None` nor an int.

  >>> image_grid(np.zeros([5, 4, 4, 1], np.uint8), rows=2, scale=1).shape
  (9, 14, 1)
  >>> image_grid(np.zeros([5, 4, 4, 1], np.uint8), rows=2, scale=3).shape
  (27, 42, 1)
  >>> image_grid(np.zeros([5, 4, 4, 1], np.uint8), rows=2).shape  # x24
  (216, 336, 1)
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError('`images` must be uint8 [N, H, W, C]; got '
                     f'{images.dtype} of shape {images.shape}.')
  n, h, w, c = images.shape
  scale = grid_scale(h, scale)
  rows = rows or max(1, math.ceil(math.sqrt(n)))
  cols = math.ceil(n / rows)
  grid = np.zeros([rows * (h + padding) - padding,
                   cols * (w + padding) - padding, c], np.uint8)
  for i in range(n):
    top, left = (i // cols) * (h + padding), (i % cols) * (w + padding)
    grid[top:top + h, left:left + w] = images[i]
  return np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)


def save_png_grid(path: str, images: TensorLike, num_bits: int = 8,
                  rows: Optional[int] = None,
                  scale: Optional[int] = None) -> str:
  """Writes pixel-space `images` `[N, H, W, C]` as one PNG grid at `path`.

  Args:
    path: Python `str`, the PNG file; its folder is created if needed.
    images: pixel-space images `[N, H, W, C]`, values in `[0, 2**num_bits)`,
      C in {1, 3}.
    num_bits: Python `int`, bits per pixel value of `images`.
      Default value: `8`.
    rows: Python `int` or `None`, rows of the grid; `None` for
      `ceil(sqrt(N))`. Default value: `None`.
    scale: `None` to upscale tiles to at least `MIN_TILE_HEIGHT` pixels
      high, or a Python `int` >= 1 (1: one pixel per pixel), nearest
      neighbour. Default value: `None`.

  Returns:
    `path`.

  Raises:
    TypeError, ValueError: for a bad `scale` (the message names it) or
      `images` that are not `[N, H, W, C]`.
  """
  grid = image_grid(to_uint8(images, num_bits).numpy(), rows, scale=scale)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tf.io.write_file(path, tf.io.encode_png(grid))
  return path
