"""A training run: build, train with checkpoints and evaluate held out.

`train` writes a run directory (`tfp_glow.runs`); `evaluate` and
`evaluate_run` give held-out bits/dim with a standard error.
"""

import collections
import math
import os
import time
from typing import Iterable, Optional, Union

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import data
from tfp_glow import images as images_lib
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow.glow import Glow
from tfp_glow.tasks import _common
from tfp_glow.tasks import grids
from tfp_glow.training import GlowModel
from tfp_glow.training import callbacks as glow_callbacks
from tfp_glow.training import default_optimizer
from tfp_glow.training._keras import keras

__all__ = ['Evaluation', 'TrainResult', 'build_glow', 'build_model', 'train',
           'evaluate', 'evaluate_run']

Evaluation = collections.namedtuple(
    'Evaluation', ['bits_per_dim', 'standard_error', 'num_images'])
TrainResult = collections.namedtuple(
    'TrainResult', ['run_dir', 'epochs', 'evaluation', 'samples', 'seconds'])


def build_glow(config: presets.Config) -> Glow:
  """The `tfp_glow.Glow` of a `presets.Config`."""
  return Glow(config.image_shape, num_levels=config.num_levels,
              num_steps=config.num_steps,
              hidden_channels=config.hidden_channels,
              coupling=config.coupling, permutation=config.permutation,
              learn_top=config.learn_top,
              num_classes=(data.num_classes(config.dataset)
                           if config.conditional else None),
              num_bits=config.num_bits, seed=config.seed)


def build_model(config: presets.Config,
                steps_per_epoch: Optional[int] = None) -> GlowModel:
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


def train(run_dir: str, config: Optional[presets.Config] = None, *,
          resume: bool = False, epochs: Optional[int] = None,
          data_dir: Optional[str] = None, verbose: Union[int, str] = 1,
          grid_scale: Optional[int] = None) -> TrainResult:
  """Trains a Glow into `run_dir`; returns held-out bits/dim and sample paths.

  Each epoch appends to `metrics.csv` (Keras `CSVLogger`: loss,
  bits_per_dim, val_bits_per_dim on the held-out split) and TensorBoard
  `logs/`, writes `samples/epoch_NNN_tT.png` (`callbacks.SampleGrid` at the
  config's temperature T) and a checkpoint. At the end it
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
  samples = grids.sample_grid(
      model.glow, os.path.join(run_dir, runs.SAMPLES_DIR, 'temperatures.png'),
      seed=config.seed, scale=scale)
  return TrainResult(run_dir, config.epochs, evaluation, samples,
                     time.time() - start)


def evaluate(glow: Glow, dataset: Iterable, *, seed: int = 0) -> Evaluation:
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
  bits_per_dim = _common.functions(glow).bits_per_dim
  values = []
  for i, batch in enumerate(dataset):
    x, labels = _common.images_and_labels(batch)
    seed_i = tf.constant([seed, i], tf.int32)
    args = (x, labels, seed_i) if glow.num_classes else (x, seed_i)
    values.append(bits_per_dim(*args).numpy())
  values = np.concatenate(values).astype(np.float64)
  stderr = (values.std(ddof=1) / math.sqrt(values.size) if values.size > 1
            else math.nan)
  return Evaluation(float(values.mean()), float(stderr), int(values.size))


def evaluate_run(run_dir: str, split: Optional[str] = None, *,
                 batch_size: Optional[int] = None,
                 num_examples: Optional[int] = None,
                 data_dir: Optional[str] = None, seed: int = 0) -> Evaluation:
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
  glow = model.glow

  def on_epoch_end(epoch, logs):
    evaluation = evaluate(glow, held_out, seed=config.seed)
    evaluations[epoch + 1] = evaluation
    if logs is not None:
      logs['val_bits_per_dim'] = evaluation.bits_per_dim

  held_out_bpd = keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)
  # samples/epoch_NNN_tT.png: 8 rows of 8 samples at the config's temperature.
  samples = glow_callbacks.SampleGrid(
      os.path.join(run_dir, runs.SAMPLES_DIR), temperatures=(config.temperature,),
      num_samples=64, seed=config.seed, rows=8, scale=scale)
  return [held_out_bpd, samples] + runs.training_callbacks(
      run_dir, manager, append=resume)
