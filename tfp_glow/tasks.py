"""The jobs of the examples and of `tfp-glow`: train, evaluate, sample, ...

Every example script and every `tfp-glow` subcommand is argument parsing
around one of these functions; they read and write run directories
(`tfp_glow.runs`).

#### Examples

```python
from tfp_glow import presets, tasks
result = tasks.train('runs/mnist', presets.get('mnist_offline'))
result.evaluation.bits_per_dim, result.evaluation.standard_error
tasks.sample_grid('runs/mnist', 'runs/mnist/samples/t.png', (0.5, 0.8, 1.0))
```
"""

import collections
import math
import os
import time
import weakref

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import data
from tfp_glow import images as images_lib
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow._keras import keras
from tfp_glow.glow import Glow
from tfp_glow.model import GlowModel
from tfp_glow.model import default_optimizer

__all__ = ['Evaluation', 'TrainResult', 'build_glow', 'build_model', 'train',
           'evaluate', 'evaluate_run', 'sample_grid', 'class_sample_grid',
           'interpolate', 'interpolation_grid', 'attribute_direction',
           'manipulate', 'manipulation_grid']

Evaluation = collections.namedtuple(
    'Evaluation', ['bits_per_dim', 'standard_error', 'num_images'])
TrainResult = collections.namedtuple(
    'TrainResult', ['run_dir', 'epochs', 'evaluation', 'samples', 'seconds'])

DEFAULT_TEMPERATURES = (0.5, 0.7, 0.85, 1.0)


def build_glow(config):
  """The `tfp_glow.Glow` of a `presets.Config`."""
  return Glow(config.image_shape, num_levels=config.num_levels,
              num_steps=config.num_steps,
              hidden_channels=config.hidden_channels,
              coupling=config.coupling, permutation=config.permutation,
              learn_top=config.learn_top,
              num_classes=(data.num_classes(config.dataset)
                           if config.conditional else None),
              num_bits=config.num_bits, seed=config.seed)


def build_model(config, steps_per_epoch=None):
  """A compiled `GlowModel` of a `presets.Config`.

  `steps_per_epoch` sets the length of a `'cosine'` learning-rate schedule
  (`epochs * steps_per_epoch` steps).
  """
  model = GlowModel(build_glow(config), init_batch_size=config.init_batch_size,
                    noise_seed=config.seed, weight_y=config.weight_y)
  learning_rate = config.learning_rate
  if config.lr_schedule == 'cosine':
    learning_rate = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=config.epochs * (steps_per_epoch or 1))
  model.compile(optimizer=default_optimizer(
      learning_rate, warmup_steps=config.warmup_steps,
      clip_norm=config.clip_norm, kind=config.optimizer))
  return model


def train(run_dir, config=None, *, resume=False, epochs=None, data_dir=None,
          verbose=1, grid_scale=None):
  """Trains a Glow into `run_dir`; returns held-out bits/dim and sample paths.

  Each epoch appends to `metrics.csv` (Keras `CSVLogger`: loss,
  bits_per_dim, val_bits_per_dim on the held-out split) and TensorBoard
  `logs/`, writes `samples/epoch_NNN.png` and a checkpoint. At the end it
  evaluates the whole held-out split (`evaluation.json`) and writes
  `samples/temperatures.png`.

  Args:
    run_dir: the run directory (created if needed).
    config: a `presets.Config`; ignored with `resume` (the run's is used).
    resume: continue the newest checkpoint of `run_dir`: weights, optimizer,
      epoch, and exactly the data order an uninterrupted run would see.
    epochs: total epochs, overriding the config's (for `resume`).
    data_dir: TFDS data directory.
    verbose: Keras `fit` verbosity (1: progress bars).
    grid_scale: nearest-neighbour upscaling of the sample grids
      (`images.save_png_grid`): `None` for tiles at least 96 pixels high
      (28x28 digits x4), or an int >= 1 (1: one pixel per pixel).

  Returns:
    A `TrainResult(run_dir, epochs, evaluation, samples, seconds)`.

  Raises:
    FileExistsError: if `run_dir` holds checkpoints and `resume` is False.
    FileNotFoundError: if `resume` and `run_dir` has no checkpoint.
    PermissionError: if `run_dir` is not writable.
    ValueError: for a bad config or `grid_scale`.
    FloatingPointError: if training stopped on a non-finite loss/gradient.

  #### Examples

  ```python
  result = train('runs/demo', presets.smoke(presets.get('mnist_offline')))
  result.evaluation       # Evaluation(bits_per_dim=8.49, standard_error=...)
  train('runs/demo', resume=True, epochs=3)    # two more epochs
  ```
  """
  start = time.time()
  config = _train_config(run_dir, config, resume, epochs)
  # Checked before training, not at the end of the first epoch.
  if grid_scale is not None:
    _validation.positive_int('grid_scale', grid_scale)
  scale = images_lib.grid_scale(config.image_shape[0], grid_scale)
  steps = _steps_per_epoch(config, data_dir)
  model = build_model(config, steps)
  manager = runs.training_checkpoint(model, run_dir)
  if resume:
    model.optimizer.build(model.trainable_variables)
    manager.checkpoint.restore(
        manager.latest_checkpoint).assert_existing_objects_matched()
  runs.write_config(run_dir, model.glow, config.to_dict())
  first_epoch = int(manager.epoch.numpy())
  train_data = _training_data(config, first_epoch, steps, data_dir)
  held_out = _held_out_data(config, data_dir)
  evaluations = {}
  callbacks = _callbacks(model, config, run_dir, manager, held_out,
                         evaluations, resume, scale)
  model.fit(train_data, epochs=config.epochs, initial_epoch=first_epoch,
            steps_per_epoch=steps, callbacks=callbacks, verbose=verbose,
            shuffle=False)
  message = model.nonfinite_message()
  if message:
    raise FloatingPointError(f'training stopped: {message}')
  evaluation = evaluations.get(config.epochs) or evaluate(
      model.glow, held_out, seed=config.seed)
  runs.write_evaluation(run_dir, dict(
      evaluation._asdict(), split=data.held_out_split(config.dataset),
      epochs=config.epochs))
  samples = sample_grid(
      model.glow, os.path.join(run_dir, runs.SAMPLES_DIR, 'temperatures.png'),
      seed=config.seed, scale=scale)
  return TrainResult(run_dir, config.epochs, evaluation, samples,
                     time.time() - start)


def evaluate(glow, dataset, *, seed=0):
  """Bits/dim of every image of `dataset`: mean and standard error.

  One uniform dequantization per image (openai/glow's test number), batch
  `i` drawn with the stateless seed `(seed, i)`; the standard error is
  `std / sqrt(N)` over the N images.

  Args:
    glow: a `tfp_glow.Glow`.
    dataset: batches of integer images, or `(images, labels)`.
    seed: Python `int`. Default value: 0.

  Returns:
    `Evaluation(bits_per_dim, standard_error, num_images)`.

  #### Examples

  ```python
  test = data.load('mnist_offline', 'test', batch_size=250)
  evaluate(runs.load_glow('runs/mnist_offline'), test)
  ```
  """
  bits_per_dim = _functions(glow).bits_per_dim
  values = []
  for i, batch in enumerate(dataset):
    x, labels = _unpack(batch)
    seed_i = tf.constant([seed, i], tf.int32)
    args = (x, labels, seed_i) if glow.num_classes else (x, seed_i)
    values.append(bits_per_dim(*args).numpy())
  values = np.concatenate(values).astype(np.float64)
  stderr = (values.std(ddof=1) / math.sqrt(values.size) if values.size > 1
            else math.nan)
  return Evaluation(float(values.mean()), float(stderr), int(values.size))


def evaluate_run(run_dir, split=None, *, batch_size=None, num_examples=None,
                 data_dir=None, seed=0):
  """`evaluate` of the newest checkpoint of `run_dir` on a split of its data.

  `split` defaults to the dataset's held-out split, `batch_size` and
  `num_examples` to the run's evaluation settings.
  """
  config = presets.Config.from_dict(runs.read_training_config(run_dir))
  glow = runs.load_glow(run_dir)
  dataset = data.load(
      config.dataset, split or data.held_out_split(config.dataset),
      batch_size=batch_size or config.eval_batch_size,
      image_size=config.image_size, num_bits=config.num_bits,
      labels=config.conditional, data_dir=data_dir, cache=False,
      num_examples=num_examples or config.eval_examples)
  return evaluate(glow, dataset, seed=seed)


def sample_grid(glow_or_run_dir, path, temperatures=DEFAULT_TEMPERATURES,
                num_per_temperature=8, seed=0, *, scale=None):
  """Writes a PNG grid of samples: one row per temperature, same noise.

  Every row decodes the same standard-normal draws scaled by its temperature.
  A conditional model's columns cycle through the classes. The grid is
  upscaled `scale` times, nearest neighbour (`images.save_png_grid`): `None`
  for tiles at least 96 pixels high, or an int >= 1. Returns `path`.
  """
  glow = _glow(glow_or_run_dir)
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  conditional = bool(glow.num_classes)
  draw = _functions(glow).sampler(num_per_temperature, conditional)
  labels = ((tf.range(num_per_temperature) % glow.num_classes,)
            if conditional else ())
  rows = [draw(tf.constant(t, tf.float32), tf.constant([seed, 0], tf.int32),
               *labels) for t in temperatures]
  return _save(path, tf.concat(rows, axis=0), glow, rows=len(temperatures),
               scale=scale)


def class_sample_grid(glow_or_run_dir, path, num_per_class=8,
                      temperature=0.7, seed=0, *, scale=None):
  """Writes a PNG grid of a conditional model's samples, one row per class.

  `scale` upscales the grid as in `sample_grid`. Returns `path`.
  """
  glow = _glow(glow_or_run_dir)
  if not glow.num_classes:
    raise ValueError('class-conditional samples need a conditional model '
                     '(trained with conditional=True / --conditional).')
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  draw = _functions(glow).sampler(num_per_class, conditional=True)
  rows = [draw(tf.constant(temperature, tf.float32),
               tf.constant([seed, c], tf.int32),
               tf.fill([num_per_class], c)) for c in range(glow.num_classes)]
  return _save(path, tf.concat(rows, axis=0), glow, rows=glow.num_classes,
               scale=scale)


def interpolate(glow, start, end, num_steps=8, labels=None):
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


def interpolation_grid(run_dir, path, *, num_pairs=4, num_steps=8, split=None,
                       data_dir=None, seed=0, pool=500, scale=None):
  """Writes interpolations between pairs of held-out images (rows) as a PNG.

  The pairs are drawn at random (by `seed`) from the first `pool` images of
  `split` (default: the held-out split); for a conditional model both images
  of a pair have the same class. `scale` upscales the grid as in
  `sample_grid`. Returns `path`.
  """
  glow, config = runs.load_glow(run_dir), _run_config(run_dir)
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  x, labels = _first_images(config, split, pool, data_dir)
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
  out = interpolate(glow, tf.gather(x, first), tf.gather(x, second), num_steps,
                    labels=pair_labels)
  return _save(path, tf.reshape(out, [-1] + list(glow.image_shape)), glow,
               rows=len(first), scale=scale)


def attribute_direction(glow, images, attribute, batch_size=64):
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


def manipulate(glow, images, direction, strengths=(-1.0, -0.5, 0.0, 0.5, 1.0)):
  """Decodes `f(x) + s * direction` for each strength s: `[N, S, H, W, C]`."""
  z = _encode(glow, images)
  steps = tf.constant(strengths, z.dtype)[None, :, None, None, None]
  moved = z[:, None] + steps * tf.cast(direction, z.dtype)
  x = glow.decode(tf.reshape(moved, [-1] + z.shape[1:].as_list()))
  return tf.reshape(x, [-1, len(strengths)] + list(glow.image_shape))


def manipulation_grid(run_dir, path, attribute, *,
                      strengths=(-1.0, -0.5, 0.0, 0.5, 1.0), num_images=4,
                      num_direction_images=1000, split=None, data_dir=None,
                      scale=None):
  """Writes attribute edits of held-out images: one row per image, one
  column per strength; the direction comes from the first
  `num_direction_images` images of the training split. `scale` upscales the
  grid as in `sample_grid`. Returns `path`.
  """
  glow, config = runs.load_glow(run_dir), _run_config(run_dir)
  scale = images_lib.grid_scale(glow.image_shape[0], scale)
  train_images, has = _first_images(config, 'train', num_direction_images,
                                    data_dir, attribute=attribute)
  direction = attribute_direction(glow, train_images, has)
  x, _ = _first_images(config, split, num_images, data_dir)
  out = manipulate(glow, x, direction, strengths)
  return _save(path, tf.reshape(out, [-1] + list(glow.image_shape)), glow,
               rows=int(x.shape[0]), scale=scale)


# ---------------------------------------------------------------- helpers.


class _Functions:
  """The traced functions of one Glow, each traced once for any batch size.

  Get them with `_functions(glow)`: they are cached per Glow, and hold the
  Glow only through a weak reference (the traced graphs hold its variables),
  so that the cache never keeps a Glow alive.
  """

  def __init__(self, glow):
    glow_ref = weakref.ref(glow)
    self._glow_ref = glow_ref
    self._samplers = {}
    conditional = bool(glow.num_classes)
    images = tf.TensorSpec([None, *glow.image_shape], tf.uint8)
    seed = tf.TensorSpec([2], tf.int32)

    def bits_per_dim(x, *args):
      labels, s = args if conditional else (None, args[0])
      return glow_ref().bits_per_dim(x, labels=labels, seed=s)

    signature = [images, seed]
    if conditional:
      signature.insert(1, tf.TensorSpec([None], tf.int32))
    self.bits_per_dim = tf.function(bits_per_dim, input_signature=signature)

  def sampler(self, num, conditional=False):
    """`(temperature, seed[, labels]) -> num samples`, traced once."""
    key = (num, conditional)
    if key not in self._samplers:
      glow_ref = self._glow_ref
      signature = [tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int32)]
      if conditional:
        signature.append(tf.TensorSpec([num], tf.int32))

      def draw(temperature, seed, labels=None):
        return glow_ref().sample(num, temperature=temperature, seed=seed,
                                 labels=labels)

      self._samplers[key] = tf.function(draw, input_signature=signature)
    return self._samplers[key]


_FUNCTIONS = weakref.WeakKeyDictionary()


def _functions(glow):
  if glow not in _FUNCTIONS:
    _FUNCTIONS[glow] = _Functions(glow)
  return _FUNCTIONS[glow]


def _train_config(run_dir, config, resume, epochs):
  runs.prepare_run_dir(run_dir)
  if resume:
    if not runs.has_checkpoint(run_dir):
      raise FileNotFoundError(
          f'`run_dir` has no checkpoint to resume: {run_dir}/'
          f'{runs.CHECKPOINT_DIR}')
    config = presets.Config.from_dict(runs.read_training_config(run_dir))
  elif config is None:
    raise ValueError('`config` is required unless resume=True.')
  elif runs.has_checkpoint(run_dir):
    raise FileExistsError(
        f'`run_dir` already holds checkpoints: {run_dir}; resume it '
        '(resume=True, --resume) or choose a new run_dir.')
  if epochs is not None:
    config = presets.replace(config, epochs=epochs)
  return presets.check(config)


def _steps_per_epoch(config, data_dir):
  if config.steps_per_epoch is not None:
    return config.steps_per_epoch
  count = data.num_examples(config.dataset, 'train', data_dir=data_dir,
                            num_examples=config.train_examples)
  if count < config.batch_size:
    raise ValueError(f'`batch_size`={config.batch_size} exceeds the {count} '
                     f'training images of {config.dataset!r}.')
  return count // config.batch_size


def _training_data(config, first_epoch, steps, data_dir):
  """Endless seeded epochs of `steps` batches from `first_epoch`."""
  return data.load(
      config.dataset, 'train', batch_size=config.batch_size,
      image_size=config.image_size, num_bits=config.num_bits,
      labels=config.conditional, shuffle=True, flip=config.flip,
      seed=config.seed, epochs=None, start_epoch=first_epoch,
      steps_per_epoch=steps, drop_remainder=True,
      num_examples=config.train_examples, data_dir=data_dir)


def _held_out_data(config, data_dir):
  return data.load(
      config.dataset, data.held_out_split(config.dataset),
      batch_size=config.eval_batch_size, image_size=config.image_size,
      num_bits=config.num_bits, labels=config.conditional,
      num_examples=config.eval_examples, data_dir=data_dir)


def _callbacks(model, config, run_dir, manager, held_out, evaluations,
               resume, scale):
  """Held-out bits/dim and a sample grid each epoch, then the run files."""
  samples_dir = os.path.join(run_dir, runs.SAMPLES_DIR)
  glow = model.glow
  # 8 rows of 8 samples, by the sampler the final `sample_grid` uses too
  # (each traced sampler costs seconds).
  draw = _functions(glow).sampler(8, conditional=bool(glow.num_classes))
  labels = (tf.range(8) % glow.num_classes,) if glow.num_classes else ()

  def on_epoch_end(epoch, logs):
    evaluation = evaluate(glow, held_out, seed=config.seed)
    evaluations[epoch + 1] = evaluation
    if logs is not None:
      logs['val_bits_per_dim'] = evaluation.bits_per_dim
    temperature = tf.constant(config.temperature, tf.float32)
    x = tf.concat([draw(temperature, tf.constant([config.seed, row], tf.int32),
                        *labels) for row in range(8)], axis=0)
    _save(os.path.join(samples_dir, f'epoch_{epoch + 1:03d}.png'), x, glow,
          scale=scale)

  own = keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)
  return [own] + runs.training_callbacks(run_dir, manager, append=resume)


def _unpack(batch):
  if isinstance(batch, (tuple, list)):
    return batch[0], tf.cast(batch[1], tf.int32)
  return batch, None


def _glow(glow_or_run_dir):
  if isinstance(glow_or_run_dir, Glow):
    return glow_or_run_dir
  return runs.load_glow(glow_or_run_dir)


def _run_config(run_dir):
  return presets.Config.from_dict(runs.read_training_config(run_dir))


def _encode(glow, x, labels=None):
  """The latent of integer images at the centres of their bins."""
  return glow.encode(tf.cast(x, glow.dtype) + 0.5, labels=labels)


def _save(path, x, glow, rows=None, scale=None):
  """PNG grid of pixel-space images; non-finite pixels are drawn black."""
  x = tf.where(tf.math.is_finite(x), x, tf.zeros_like(x))
  return images_lib.save_png_grid(path, x, num_bits=glow.num_bits, rows=rows,
                                  scale=scale)


def _first_images(config, split, count, data_dir, attribute=None):
  """The first `count` images (and labels) of a split, as tensors."""
  dataset = data.load(
      config.dataset, split or data.held_out_split(config.dataset),
      batch_size=count, image_size=config.image_size, num_bits=config.num_bits,
      labels=config.conditional and attribute is None, attribute=attribute,
      num_examples=count, cache=False, data_dir=data_dir)
  x, labels = _unpack(next(iter(dataset)))
  return x, labels


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
