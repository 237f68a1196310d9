"""Latent arithmetic on a Glow: interpolation and attribute directions.

Images are encoded at the centres of their pixel bins (`x + 0.5`), edited in
the latent space, and decoded; nothing here writes files (see `grids`).
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfp_glow.glow import Glow

__all__ = ['interpolate', 'attribute_direction', 'manipulate']

TensorLike = tf.types.experimental.TensorLike


def interpolate(glow: Glow, start: TensorLike, end: TensorLike,
                num_steps: int = 8,
                labels: Optional[TensorLike] = None) -> tf.Tensor:
  """Decodes `num_steps` points on the latent line from `start` to `end`.

  `z(t) = (1 - t) f(start) + t f(end)` for t evenly spaced in [0, 1], with
  the images encoded at the centres of their pixel bins (`x + 0.5`).

  Args:
    glow: a `tfp_glow.Glow`.
    start, end: integer images `[N, H, W, C]`.
    num_steps: Python `int` >= 2.
    labels: class ids `[N]` of both ends (conditional models).

  Returns:
    Images `[N, num_steps, H, W, C]` in pixel space.

  #### Examples

  ```python
  x, _ = data.offline.arrays('test')
  frames = interpolate(glow, x[:4], x[4:8], num_steps=8)   # [4, 8, 28, 28, 1]
  ```
  """
  z0, z1 = (_encode(glow, x, labels) for x in (start, end))
  t = tf.reshape(tf.linspace(0.0, 1.0, num_steps),
                 [1, -1] + [1] * z0.shape[1:].rank)
  z = (1.0 - t) * z0[:, None] + t * z1[:, None]
  flat = tf.reshape(z, [-1] + z0.shape[1:].as_list())
  flat_labels = None if labels is None else tf.repeat(labels, num_steps)
  x = glow.decode(flat, labels=flat_labels)
  return tf.reshape(x, [-1, num_steps] + list(glow.image_shape))


def attribute_direction(glow: Glow, images: TensorLike, attribute: TensorLike,
                        batch_size: int = 64) -> tf.Tensor:
  """Mean latent of images with an attribute minus that of those without.

  Args:
    glow: a `tfp_glow.Glow`.
    images: integer images `[N, H, W, C]`.
    attribute: 0/1 labels `[N]`, 1 where the image has the attribute.
    batch_size: images encoded at a time.

  Returns:
    A latent `[*glow.latent_shape]`.

  Raises:
    ValueError: if no image has, or every image has, the attribute.

  #### Examples

  ```python
  images, smiling = next(iter(data.load('celeb_a', 'train', batch_size=1000,
                                        num_bits=5, attribute='Smiling')))
  smile = attribute_direction(glow, images, smiling)
  edits = manipulate(glow, images[:4], smile, strengths=(-1.0, 0.0, 1.0))
  ```
  """
  attribute = np.asarray(attribute).astype(bool)
  if attribute.all() or not attribute.any():
    raise ValueError(f'`attribute` must mark some but not all of the '
                     f'{attribute.size} images; {int(attribute.sum())} have it.')
  z = tf.concat([_encode(glow, images[i:i + batch_size])
                 for i in range(0, len(attribute), batch_size)], axis=0)
  return (tf.reduce_mean(tf.boolean_mask(z, attribute), axis=0) -
          tf.reduce_mean(tf.boolean_mask(z, ~attribute), axis=0))


def manipulate(
    glow: Glow, images: TensorLike, direction: TensorLike,
    strengths: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0)) -> tf.Tensor:
  """Decodes `f(x) + s * direction` for each strength s: `[N, S, H, W, C]`."""
  z = _encode(glow, images)
  steps = tf.constant(strengths, z.dtype)[None, :, None, None, None]
  moved = z[:, None] + steps * tf.cast(direction, z.dtype)
  x = glow.decode(tf.reshape(moved, [-1] + z.shape[1:].as_list()))
  return tf.reshape(x, [-1, len(strengths)] + list(glow.image_shape))


def _encode(glow, x, labels=None):
  """The latent of integer images at the centres of their bins."""
  return glow.encode(tf.cast(x, glow.dtype) + 0.5, labels=labels)
