"""PNG grids of a Glow or a run: samples, classes, contexts, interpolations
and edits.

Each grid is upscaled `scale` times, nearest neighbour
(`images.save_png_grid`): `None` for tiles at least 96 pixels high.
"""

from typing import Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import data
from tfp_glow import images as images_lib
from tfp_glow import runs
from tfp_glow.glow import Glow
from tfp_glow.tasks import _common
from tfp_glow.tasks import latents

__all__ = ['DEFAULT_TEMPERATURES', 'CONTEXT_TEMPERATURES', 'sample_grid',
           'class_sample_grid', 'context_sample_grid', 'interpolation_grid',
           'manipulation_grid']

DEFAULT_TEMPERATURES = (0.5, 0.7, 0.85, 1.0)
# The columns of samples of `context_sample_grid`.
CONTEXT_TEMPERATURES = (0.5, 0.8)


def sample_grid(glow_or_run_dir: Union[Glow, str], path: str,
                temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
                num_per_temperature: int = 8, seed: int = 0, *,
                scale: Optional[int] = None) -> str:
  """Writes a PNG grid of samples: one row per temperature, same noise.

  Every row decodes the same standard-normal draws scaled by its temperature.
  A conditional model's columns cycle through the classes. The grid is
  upscaled `scale` times, nearest neighbour (`images.save_png_grid`): `None`
  for tiles at least 96 pixels high, or an int >= 1. Returns `path`.
  """
  glow = _common.as_glow(glow_or_run_dir)
  _no_context('sample_grid', glow)
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  conditional = bool(glow.num_classes)
  draw = _common.functions(glow).sampler(num_per_temperature, conditional)
  labels = ((tf.range(num_per_temperature) % glow.num_classes,)
            if conditional else ())
  rows = [draw(tf.constant(t, tf.float32), tf.constant([seed, 0], tf.int32),
               *labels) for t in temperatures]
  return _common.save_grid(path, tf.concat(rows, axis=0), glow, rows=len(temperatures),
               scale=scale)


def class_sample_grid(glow_or_run_dir: Union[Glow, str], path: str,
                      num_per_class: int = 8, temperature: float = 0.7,
                      seed: int = 0, *, scale: Optional[int] = None) -> str:
  """Writes a PNG grid of a conditional model's samples, one row per class.

  `scale` upscales the grid as in `sample_grid`. Returns `path`.
  """
  glow = _common.as_glow(glow_or_run_dir)
  _no_context('class_sample_grid', glow)
  if not glow.num_classes:
    raise ValueError('class-conditional samples need a conditional model '
                     '(trained with conditional=True / --conditional).')
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  draw = _common.functions(glow).sampler(num_per_class, conditional=True)
  rows = [draw(tf.constant(temperature, tf.float32),
               tf.constant([seed, c], tf.int32),
               tf.fill([num_per_class], c)) for c in range(glow.num_classes)]
  return _common.save_grid(path, tf.concat(rows, axis=0), glow, rows=glow.num_classes,
               scale=scale)


def context_sample_grid(
    glow_or_run_dir: Union[Glow, str], path: str,
    batch: Optional[Mapping[str, tf.Tensor]] = None,
    temperatures: Sequence[float] = CONTEXT_TEMPERATURES, *,
    num_images: int = 10, split: Optional[str] = None,
    data_dir: Optional[str] = None, seed: int = 0,
    scale: Optional[int] = None) -> str:
  """Writes a PNG grid of a super-resolution Glow p(x | low-resolution x).

  One row per example: its context (the low-resolution input, upscaled to
  the image size, nearest neighbour), one sample per temperature (the same
  noise in every column, scaled by the temperature) and the true image:

  ```none
  | context | T = 0.5 | T = 0.8 | truth |      (temperatures=(0.5, 0.8))
  ```

  Args:
    glow_or_run_dir: a Glow with an image `context_shape` of the image's
      channels (a box context, `tfp_glow.data.context`), or a run directory.
    path: Python `str`, the PNG file.
    batch: a dict `{'images', 'context'[, 'labels']}` (as
      `tfp_glow.data.load(..., context=...)` yields), or `None` for
      `num_images` examples spread evenly over the first 500 of `split` of
      the run's data (`glow_or_run_dir` must then be a run directory).
      Default value: `None`.
    temperatures: Python `float`s, one column of samples each.
      Default value: `CONTEXT_TEMPERATURES`, (0.5, 0.8).
    num_images: Python `int` >= 1, the rows when `batch` is `None`.
      Default value: `10`.
    split: the split of the run's data; `None` for its held-out split.
    data_dir: TFDS data directory. Default value: `None`.
    seed: Python `int`, seed of the noise. Default value: `0`.
    scale: nearest-neighbour upscaling of the grid, as in `sample_grid`.
      Default value: `None`.

  Returns:
    `path`.

  Raises:
    ValueError: for a Glow without an image context, a `batch` without
      `'context'`, or no `batch` with a Glow (the message names it).
  """
  glow = _common.as_glow(glow_or_run_dir)
  if glow.context_shape is None or len(glow.context_shape) != 3:
    raise ValueError('context_sample_grid needs a Glow with an image context '
                     f'(context_shape=(h, w, c)); got context_shape='
                     f'{glow.context_shape}.')
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  parts = _context_batch(glow_or_run_dir, glow, batch, num_images, split,
                         data_dir)
  num = int(parts['images'].shape[0])
  draw = _common.functions(glow).sampler(num, bool(glow.num_classes),
                                         context=True)
  extra = [parts[k] for k in ('labels', 'context') if k in parts]
  samples = [draw(tf.constant(t, tf.float32), tf.constant([seed, 0], tf.int32),
                  *extra) for t in temperatures]
  shown = data.context.to_pixels(parts['context'], glow.image_shape,
                                 glow.num_bits)
  truth = tf.cast(parts['images'], tf.float32)
  columns = tf.stack([shown, *samples, truth], axis=1)   # [N, cols, H, W, C]
  return _common.save_grid(
      path, tf.reshape(columns, [-1, *glow.image_shape]), glow, rows=num,
      scale=scale)


def _context_batch(glow_or_run_dir, glow, batch, num_images, split, data_dir):
  """`batch_parts` of the given batch, or of the run's first examples."""
  if batch is not None:
    return _common.batch_parts(batch, glow, 'context_sample_grid')
  if isinstance(glow_or_run_dir, Glow):
    raise ValueError('context_sample_grid: give a `batch` (a dict with '
                     "'images' and 'context') with a Glow, or a run directory "
                     'to read its held-out examples.')
  _validation.positive_int('num_images', num_images)
  config = _common.run_config(glow_or_run_dir)
  return _common.spread_batch(config, split, num_images, data_dir, glow)


def _no_context(name, glow):
  """Raises for a Glow with a context: its samples need one."""
  if glow.context_shape is not None:
    raise ValueError(
        f'{name}: this Glow is conditional on a context (context_shape='
        f'{glow.context_shape}); its samples need one: use '
        'tasks.context_sample_grid (tfp-glow sample does).')


def interpolation_grid(run_dir: str, path: str, *, num_pairs: int = 4,
                       num_steps: int = 8, split: Optional[str] = None,
                       data_dir: Optional[str] = None, seed: int = 0,
                       pool: int = 500, scale: Optional[int] = None) -> str:
  """Writes interpolations between pairs of held-out images (rows) as a PNG.

  The pairs are drawn at random (by `seed`) from the first `pool` images of
  `split` (default: the held-out split); for a conditional model both images
  of a pair have the same class. `scale` upscales the grid as in
  `sample_grid`. Returns `path`.
  """
  glow, config = runs.load_glow(run_dir), _common.run_config(run_dir)
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  x, labels = _common.first_images(config, split, pool, data_dir)
  if x.shape[0] < 2 * num_pairs:
    raise ValueError(f'`num_pairs`={num_pairs} needs {2 * num_pairs} images; '
                     f'the split has {x.shape[0]}.')
  order = np.random.default_rng(seed).permutation(x.shape[0])
  if glow.num_classes:
    first, second = _same_class_pairs(np.asarray(labels)[order], num_pairs)
    first, second = order[first], order[second]
  else:
    first, second = order[0:2 * num_pairs:2], order[1:2 * num_pairs:2]
  pair_labels = tf.gather(labels, first) if glow.num_classes else None
  out = latents.interpolate(glow, tf.gather(x, first), tf.gather(x, second), num_steps,
                    labels=pair_labels)
  return _common.save_grid(path, tf.reshape(out, [-1] + list(glow.image_shape)), glow,
               rows=len(first), scale=scale)


def manipulation_grid(run_dir: str, path: str, attribute: str, *,
                      strengths: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
                      num_images: int = 4, num_direction_images: int = 1000,
                      split: Optional[str] = None,
                      data_dir: Optional[str] = None,
                      scale: Optional[int] = None) -> str:
  """Writes attribute edits of held-out images: one row per image, one
  column per strength; the direction comes from the first
  `num_direction_images` images of the training split. `scale` upscales the
  grid as in `sample_grid`. Returns `path`.
  """
  glow, config = runs.load_glow(run_dir), _common.run_config(run_dir)
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  train_images, has = _common.first_images(config, 'train', num_direction_images,
                                    data_dir, attribute=attribute)
  direction = latents.attribute_direction(glow, train_images, has)
  x, _ = _common.first_images(config, split, num_images, data_dir)
  out = latents.manipulate(glow, x, direction, strengths)
  return _common.save_grid(path, tf.reshape(out, [-1] + list(glow.image_shape)), glow,
               rows=int(x.shape[0]), scale=scale)


def _same_class_pairs(labels, num_pairs):
  """Index pairs (i, j), i < j, of images of the same class."""
  labels = np.asarray(labels)
  first, second, used = [], [], set()
  for i in range(len(labels)):
    match = [j for j in range(i + 1, len(labels))
             if labels[j] == labels[i] and j not in used and i not in used]
    if match:
      first.append(i)
      second.append(match[0])
      used.update((i, match[0]))
    if len(first) == num_pairs:
      break
  if not first:
    raise ValueError('no two images of the same class to interpolate.')
  return np.array(first), np.array(second)
