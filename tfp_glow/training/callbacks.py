"""Keras callbacks for training a `tfp_glow.GlowModel`.

- `NonFiniteGuard` stops `fit` after a non-finite step (added by `fit`;
  defined in `tfp_glow.training.guard`, beside the step's record it reads).
- `SampleGrid` writes grids of seeded samples as PNG files and TensorBoard
  images; use `keras.callbacks.TensorBoard` alongside it for the `loss` and
  `bits_per_dim` scalars.
"""

import os
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import images as glow_images
from tfp_glow.glow import Glow
from tfp_glow.training import _distribute
from tfp_glow.training._keras import keras
from tfp_glow.training.guard import NonFiniteGuard

__all__ = ['NonFiniteGuard', 'SampleGrid']  # NonFiniteGuard: from guard.


class SampleGrid(keras.callbacks.Callback):
  """Writes grids of samples of a Glow at the end of every n-th epoch.

  At the end of epoch `e` (counted from 1, as in Keras' progress bar and
  `ModelCheckpoint`'s `{epoch}`), if `e % every_n_epochs == 0`, for every
  temperature `T`:

  ```none
  x = glow.sample(num_samples, temperature=T, seed=(seed, e), labels=labels,
                  context=context)
  directory/epoch_{e:03d}_t{T}.png    a PNG grid (images.save_png_grid)
  log_dir/samples: tf.summary.image('samples/t{T}', grid, step=e - 1)
  ```

  Both grids are upscaled `scale` times, nearest neighbour: by default so
  that each tile is at least 96 pixels high (8x8 images x12, 28x28 x4,
  32x32 x3, 64x64 x2).

  The seed is stateless: the same weights, `seed` and epoch give the same
  picture, and one seed draws the same latents (scaled by `T`) at every
  temperature. The TensorBoard step is `e - 1`, the step of the
  `epoch_loss` and `epoch_bits_per_dim` scalars that
  `keras.callbacks.TensorBoard(log_dir)` writes in `log_dir/train` and
  `log_dir/validation`. Under a multi-worker strategy only the chief writes.

  Args:
    directory: Python `str` or `None`, where to write the PNG files (created
      if needed); `None` writes none. Default value: `None`.
    every_n_epochs: Python `int` >= 1. Default value: `1`.
    temperatures: sequence of Python `float`s > 0. Default value:
      `(0.7, 1.0)`.
    num_samples: Python `int` >= 1, images per grid. Default value: `16`.
    seed: Python `int`, first half of every sampling seed. Default value: `0`.
    labels: `None` or int class ids `[num_samples]`, for a class-conditional
      Glow; `None` cycles through the classes (`i % num_classes`).
      Default value: `None`.
    log_dir: Python `str` or `None`, TensorBoard log directory; the images go
      to its `samples` subdirectory. Default value: `None`.
    rows: Python `int` or `None`, rows of the grid; `None` for
      `ceil(sqrt(num_samples))`. Default value: `None`.
    scale: Python `int` >= 1, or `None` for the smallest factor that makes
      a tile at least `images.MIN_TILE_HEIGHT` (96) pixels high
      (`images.grid_scale`); 1 writes one pixel per pixel.
      Default value: `None`.
    glow: the `tfp_glow.Glow` to sample, or `None` for `model.glow`.
      Default value: `None`.
    context: the raw context of a conditional Glow (`context_shape` set):
      `[num_samples, ...]`, or one for all (`[1, ...]`), passed through the
      model's `context_encoder` if it has one; required for a conditional
      Glow. Default value: `None`.

  Raises:
    TypeError, ValueError: for a bad argument (the message names it); also
      when training starts, if `labels` or `context` do not match the Glow.
    ImportError: for a `log_dir` without the `tensorboard` package.

  #### Examples

  ```python
  model.fit(dataset, epochs=10, callbacks=[
      SampleGrid('run/samples', temperatures=(0.7, 1.0), log_dir='run/logs'),
      keras.callbacks.TensorBoard('run/logs')])
  # run/samples/epoch_001_t0.7.png, ..., run/samples/epoch_010_t1.0.png
  ```
  """

  def __init__(self, directory: Optional[Union[str, os.PathLike]] = None,
               every_n_epochs: int = 1,
               temperatures: Sequence[float] = (0.7, 1.0),
               num_samples: int = 16, seed: int = 0,
               labels: Optional[Union[Sequence[int], np.ndarray]] = None, *,
               log_dir: Optional[Union[str, os.PathLike]] = None,
               rows: Optional[int] = None, scale: Optional[int] = None,
               glow: Optional[Glow] = None, context: Optional[Any] = None):
    super().__init__()
    if directory is None and log_dir is None:
      raise ValueError('SampleGrid needs `directory` (PNG files) or `log_dir` '
                       '(TensorBoard); got both None.')
    if log_dir is not None and not hasattr(tf.summary, 'image'):
      raise ImportError('SampleGrid(log_dir=...) writes TensorBoard images '
                        'with tf.summary.image, which needs the `tensorboard` '
                        'package: pip install tensorboard.')
    self.directory = None if directory is None else os.fspath(directory)
    self.log_dir = None if log_dir is None else os.fspath(log_dir)
    self.every_n_epochs = _validation.positive_int('every_n_epochs',
                                                   every_n_epochs)
    self.temperatures = _temperatures(temperatures)
    self.num_samples = _validation.positive_int('num_samples', num_samples)
    self.seed = _validation.integer('seed', seed)
    self.rows = None if rows is None else _validation.positive_int('rows',
                                                                   rows)
    # Checked here; `None` becomes a factor at each grid, from the height.
    self.scale = None if scale is None else _validation.positive_int('scale',
                                                                     scale)
    self.labels = _labels(labels, self.num_samples)
    self.context = None if context is None else tf.convert_to_tensor(context)
    self._glow = glow
    self._traced = None  # (glow, its traced sampler)
    self._writer = None
    self.paths = []   # Every PNG file written, in order.

  def on_train_begin(self, logs: Optional[dict] = None) -> None:
    glow = self._sample_glow()
    if self.labels is not None and not glow.num_classes:
      raise ValueError('`labels` were given to SampleGrid but the Glow is '
                       'not class-conditional (num_classes=None).')
    if self.labels is not None and np.any(self.labels >= glow.num_classes):
      raise ValueError(f'`labels` must be in [0, {glow.num_classes}); got '
                       f'labels={self.labels.tolist()}.')
    if (glow.context_shape is None) != (self.context is None):
      raise ValueError(
          'SampleGrid: `context` (the raw context of the samples, '
          f'[num_samples or 1, ...]) is required iff the Glow is conditional; '
          f'got context_shape={glow.context_shape} and context='
          f'{None if self.context is None else self.context.shape}.')
    if self.log_dir is not None and self._writer is None and self._is_chief():
      self._writer = tf.summary.create_file_writer(
          os.path.join(self.log_dir, 'samples'))

  def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
    number = epoch + 1
    if number % self.every_n_epochs or not self._is_chief():
      return
    for temperature, samples in self.sample(number).items():
      self._write(number, temperature, samples)

  def on_train_end(self, logs: Optional[dict] = None) -> None:
    if self._writer is not None:
      self._writer.flush()

  def sample(self, epoch: int) -> Dict[float, tf.Tensor]:
    """`{temperature: samples [num_samples, H, W, C]}` for epoch `epoch`.

    Args:
      epoch: Python `int`, the epoch number counted from 1.

    Returns:
      `dict` from each temperature to the pixel-space samples drawn with the
      stateless seed `(seed, epoch)`.
    """
    glow = self._sample_glow()
    labels = self.labels
    if labels is None and glow.num_classes:
      labels = np.arange(self.num_samples) % glow.num_classes
    labels = () if labels is None else (tf.constant(labels, tf.int32),)
    seed = tf.constant([self.seed, epoch], tf.int32)
    draw = self._sampler(glow)
    context = self._glow_context(glow)
    return {t: draw(tf.constant(t, glow.dtype), seed, context, *labels)
            for t in self.temperatures}

  def _glow_context(self, glow):
    """The Glow's context for `num_samples` samples (a dummy if none)."""
    if self.context is None:
      return tf.zeros([0], glow.dtype)
    encoder = getattr(getattr(self, 'model', None), 'context_encoder', None)
    context = self.context if encoder is None else encoder(
        self.context, training=False)
    context = tf.cast(context, glow.dtype)
    return tf.broadcast_to(context, [self.num_samples, *glow.context_shape])

  def _sampler(self, glow):
    """`glow.sample` traced once (an eager sample re-runs Python per layer)."""
    if self._traced is None or self._traced[0] is not glow:
      num, conditional = self.num_samples, bool(glow.num_classes)
      context_shape = ([num, *glow.context_shape] if glow.context_shape
                       else [0])
      signature = [tf.TensorSpec([], glow.dtype), tf.TensorSpec([2], tf.int32),
                   tf.TensorSpec(context_shape, glow.dtype)]
      if conditional:
        signature.append(tf.TensorSpec([num], tf.int32))

      @tf.function(input_signature=signature, autograph=False)
      def draw(temperature, seed, context, *labels):
        return glow.sample(num, temperature=temperature, seed=seed,
                           labels=labels[0] if labels else None,
                           context=context if glow.context_shape else None)
      self._traced = (glow, draw)
    return self._traced[1]

  def _write(self, epoch, temperature, samples):
    if self.directory is not None:
      path = os.path.join(self.directory,
                          f'epoch_{epoch:03d}_t{temperature}.png')
      glow_images.save_png_grid(path, samples, self._sample_glow().num_bits,
                                self.rows, scale=self.scale)
      self.paths.append(path)
    if self._writer is not None:
      pixels = glow_images.to_uint8(samples, self._sample_glow().num_bits)
      grid = glow_images.image_grid(pixels.numpy(), self.rows,
                                    scale=self.scale)
      with self._writer.as_default():
        tf.summary.image(f'samples/t{temperature}', grid[np.newaxis],
                         step=epoch - 1)

  def _sample_glow(self):
    glow = self._glow if self._glow is not None else getattr(
        self.model, 'glow', None)
    if glow is None:
      raise ValueError('SampleGrid needs a Glow: pass `glow=` or use it with '
                       'a model that has a `.glow` (a tfp_glow.GlowModel).')
    return glow

  def _is_chief(self):
    model = getattr(self, 'model', None)
    strategy = getattr(model, 'distribute_strategy', None)
    return strategy is None or _distribute.is_chief(strategy)


def _temperatures(temperatures):
  try:
    values = tuple(temperatures)
  except TypeError as e:
    raise TypeError('`temperatures` must be a sequence of floats > 0; got '
                    f'{temperatures!r}.') from e
  if not values:
    raise ValueError('`temperatures` must not be empty; got '
                     f'temperatures={temperatures!r}.')
  return tuple(_validation.positive_float(f'temperatures[{i}]', t)
               for i, t in enumerate(values))


def _labels(labels, num_samples):
  if labels is None:
    return None
  array = np.asarray(labels)
  if array.shape != (num_samples,) or not np.issubdtype(array.dtype,
                                                        np.integer):
    raise ValueError(f'`labels` must be {num_samples} (num_samples) int class '
                     f'ids; got dtype {array.dtype} and shape {array.shape}.')
  if np.any(array < 0):
    raise ValueError(f'`labels` must be >= 0; got labels={array.tolist()}.')
  return array
