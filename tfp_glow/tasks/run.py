"""A training run: build, train with checkpoints and evaluate held out.

`train` writes a run directory (`tfp_glow.runs`), for a number of epochs or
a wall-clock budget; `evaluate` and `evaluate_run` give held-out bits/dim
with a standard error, and with `num_samples=K > 1` the importance-weighted
bound beside it. A config with a `context` trains a conditional Glow
p(x | context) on dicts of `tfp_glow.data.load(..., context=...)`; one with
`dequantization='variational'` trains (and evaluates) the variational bound
of a learned noise q(u | x).
"""

import collections
import math
import os
import time
from typing import Iterable, Optional, Union

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import checkpoints
from tfp_glow import data
from tfp_glow import images as images_lib
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow.dequantizer import VariationalDequantizer
from tfp_glow.glow import Glow
from tfp_glow.tasks import _common
from tfp_glow.tasks import grids
from tfp_glow.training import GlowModel
from tfp_glow.training import callbacks as glow_callbacks
from tfp_glow.training import default_optimizer
from tfp_glow.training._keras import keras

__all__ = ['Evaluation', 'TrainResult', 'build_glow', 'build_model', 'train',
           'evaluate', 'bits_per_dim_values', 'bits_per_dim_draws',
           'evaluate_run']

_GRID_ROWS = 10   # Held-out examples in the grids of a conditional run.

Evaluation = collections.namedtuple(
    'Evaluation',
    ['bits_per_dim', 'standard_error', 'num_images', 'dequantization',
     'num_samples', 'importance_weighted_bits_per_dim',
     'importance_weighted_standard_error'],
    defaults=('uniform', 1, None, None))
Evaluation.__doc__ = """Held-out bits/dim of `evaluate`: the mean over the
images and its standard error, the number of images, the dequantization
(`'uniform'`, or `'variational'`: then `bits_per_dim` is the single-sample
variational bound, the ELBO in bits), and for `num_samples` K > 1 the mean
and standard error of the K-sample importance-weighted bound (`None` for
K = 1)."""
TrainResult = collections.namedtuple(
    'TrainResult',
    ['run_dir', 'epochs', 'evaluation', 'samples', 'seconds', 'steps'])
TrainResult.__doc__ = """What `train` did: the run directory, the epochs done
(a budget-stopped run's last one partial), the final held-out `Evaluation`,
the PNG of the final samples, the seconds taken and the optimizer steps done
(over the whole run, resumed parts included)."""


def build_glow(config: presets.Config) -> Glow:
  """The `tfp_glow.Glow` of a `presets.Config`."""
  return Glow(config.image_shape, num_levels=config.num_levels,
              num_steps=config.num_steps,
              hidden_channels=config.hidden_channels,
              coupling=config.coupling, permutation=config.permutation,
              learn_top=config.learn_top,
              num_classes=(data.num_classes(config.dataset)
                           if config.conditional else None),
              context_shape=config.context_shape, num_bits=config.num_bits,
              compute_dtype=config.compute_dtype, seed=config.seed)


def build_model(config: presets.Config,
                steps_per_epoch: Optional[int] = None,
                progress: Optional[tf.Variable] = None) -> GlowModel:
  """A compiled `GlowModel` of a `presets.Config`.

  `steps_per_epoch` sets the length of a `'cosine'` learning-rate schedule
  (`epochs * steps_per_epoch` steps). With `progress`, a float32 variable of
  the fraction of a wall-clock budget spent (see `train`'s `max_seconds`),
  the cosine decays over the budget instead.
  """
  model = GlowModel(build_glow(config), init_batch_size=config.init_batch_size,
                    noise_seed=config.seed, weight_y=config.weight_y,
                    dequantization=config.dequantization)
  learning_rate = config.learning_rate
  if config.lr_schedule == 'cosine' and progress is not None:
    learning_rate = _BudgetCosine(learning_rate, progress)
  elif config.lr_schedule == 'cosine':
    learning_rate = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=config.epochs * (steps_per_epoch or 1))
  model.compile(optimizer=default_optimizer(
      learning_rate, warmup_steps=config.warmup_steps,
      clip_norm=config.clip_norm, kind=config.optimizer))
  return model


def train(run_dir: str, config: Optional[presets.Config] = None, *,
          resume: bool = False, epochs: Optional[int] = None,
          data_dir: Optional[str] = None, verbose: Union[int, str] = 1,
          grid_scale: Optional[int] = None,
          max_seconds: Optional[float] = None,
          eval_num_samples: int = 1) -> TrainResult:
  """Trains a Glow into `run_dir`; returns held-out bits/dim and sample paths.

  Each epoch appends to `metrics.csv` (Keras `CSVLogger`: loss,
  bits_per_dim, val_bits_per_dim on the held-out split) and TensorBoard
  `logs/`, writes `samples/epoch_NNN_tT.png` (`callbacks.SampleGrid` at the
  config's temperature T) and a checkpoint. At the end it
  evaluates the whole held-out split (`evaluation.json`) and writes
  `samples/temperatures.png`.

  A config with a `context` (`presets.Config.context`, e.g. `'box4'`) trains
  a conditional Glow p(x | context) on `{'images', 'context'}` batches; its
  grids, `samples/epoch_NNN.png` and `samples/context_samples.png`, show per
  row the context, samples at temperatures 0.5 and 0.8 and the true image
  of one of 10 held-out examples (`grids.context_sample_grid`). A config
  with `dequantization='variational'` trains q(u | x) with the Glow (both
  in the checkpoints, `runs.load_dequantizer`); its loss and every
  bits/dim reported is then the variational bound.

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
    max_seconds: `None`, or a wall-clock budget in seconds (> 0) of this
      call's Keras training loop (from after the data-dependent init;
      tracing and per-epoch evaluations included): training stops after the
      first step that ends past it (the epoch it ends is then partial:
      evaluated, checkpointed and counted), or after the config's epochs,
      whichever comes first. A `'cosine'` schedule then decays over
      whichever ends first, the budget left after the first (tracing) step
      (by elapsed time) or the epochs (by steps), so such a run is not
      reproducible step for step. Default value: `None`.
    eval_num_samples: Python `int` K >= 1: the final held-out evaluation
      adds the K-sample importance-weighted bound (`evaluate`); the
      per-epoch ones stay single-sample. Default value: `1`.

  Returns:
    A `TrainResult(run_dir, epochs, evaluation, samples, seconds, steps)`.

  Raises:
    FileExistsError: if `run_dir` holds checkpoints and `resume` is False.
    FileNotFoundError: if `resume` and `run_dir` has no checkpoint.
    PermissionError: if `run_dir` is not writable.
    ValueError: for a bad config, `grid_scale` or `eval_num_samples`.
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
  if max_seconds is not None:
    _validation.positive_float('max_seconds', max_seconds)
  _validation.positive_int('eval_num_samples', eval_num_samples)
  scale = images_lib.grid_scale(config.image_shape[0], grid_scale)
  steps = _steps_per_epoch(config, data_dir)
  budget = None if max_seconds is None else _Budget(max_seconds)
  model = build_model(config, steps, budget.progress if budget else None)
  manager = runs.training_checkpoint(model, run_dir)
  if resume:
    if manager.latest_checkpoint:
      checkpoints.check_resumable(manager.latest_checkpoint)
    model.optimizer.build(model.trainable_variables)
    manager.checkpoint.restore(
        manager.latest_checkpoint).assert_existing_objects_matched()
  runs.write_config(run_dir, model.glow, config.to_dict(),
                    dequantizer=model.dequantizer)
  first_epoch = int(manager.epoch.numpy())
  train_data = _training_data(config, first_epoch, steps, data_dir)
  held_out = _held_out_data(config, data_dir)
  evaluations = {}
  callbacks = _callbacks(model, config, run_dir, manager, held_out,
                         evaluations, resume, scale, data_dir)
  model.fit(train_data, epochs=config.epochs, initial_epoch=first_epoch,
            steps_per_epoch=steps, callbacks=callbacks + (
                [budget] if budget else []),
            verbose=verbose, shuffle=False)
  message = model.nonfinite_message()
  if message:
    raise FloatingPointError(f'training stopped: {message}')
  done = int(manager.epoch.numpy())   # < config.epochs if the budget ended.
  evaluation = evaluations.get(done)
  if evaluation is None or eval_num_samples > 1:
    evaluation = evaluate(model.glow, held_out, seed=config.seed,
                          num_samples=eval_num_samples,
                          dequantizer=model.dequantizer)
  runs.write_evaluation(run_dir, dict(
      evaluation._asdict(), split=data.held_out_split(config.dataset),
      epochs=done))
  samples = _final_grid(model.glow, config, run_dir, scale, data_dir)
  return TrainResult(run_dir, done, evaluation, samples, time.time() - start,
                     int(model.optimizer.iterations.numpy()))


def evaluate(glow: Glow, dataset: Iterable, *, seed: int = 0,
             num_samples: int = 1,
             dequantizer: Optional[VariationalDequantizer] = None
             ) -> Evaluation:
  """Bits/dim of every image of `dataset`: mean and standard error.

  One dequantization per image (openai/glow's test number), batch `i` drawn
  with the stateless seed `(seed, i)`; the standard error is
  `std / sqrt(N)` over the N images. The noise is uniform, or with a
  `dequantizer` u ~ q(u | x): the figure is then the single-sample
  variational bound (the ELBO in bits). With `num_samples=K > 1` the
  evaluation adds the K-sample importance-weighted bound, its proposal the
  same noise (`bits_per_dim_values`), a tighter bound on -log P(x) / (D ln 2)
  on average.

  Args:
    glow: a `tfp_glow.Glow`.
    dataset: batches of integer images, `(images, labels)`, or dicts
      `{'images'[, 'labels'][, 'context']}` (a conditional Glow's).
    seed: Python `int`. Default value: 0.
    num_samples: Python `int` K >= 1. Default value: 1.
    dequantizer: `None` (uniform noise), or the run's
      `VariationalDequantizer` (`runs.load_dequantizer`). Default value:
      `None`.

  Returns:
    `Evaluation(bits_per_dim, standard_error, num_images, dequantization,
    num_samples, importance_weighted_bits_per_dim,
    importance_weighted_standard_error)`.

  Raises:
    TypeError, ValueError: for a bad `num_samples` or `dequantizer`.

  #### Examples

  ```python
  test = data.load('mnist_offline', 'test', batch_size=250)
  evaluate(runs.load_glow('runs/mnist_offline'), test)
  evaluate(runs.load_glow('runs/v'), test, num_samples=16,
           dequantizer=runs.load_dequantizer('runs/v'))
  ```
  """
  _checked_bound(glow, num_samples, dequantizer)
  single = _mean_and_stderr(bits_per_dim_values(glow, dataset, seed=seed,
                                                dequantizer=dequantizer))
  weighted = (None, None)
  if num_samples > 1:
    weighted = _mean_and_stderr(bits_per_dim_values(
        glow, dataset, seed=seed, num_samples=num_samples,
        dequantizer=dequantizer))[:2]
  return Evaluation(*single,
                    'uniform' if dequantizer is None else 'variational',
                    num_samples, *weighted)


def _mean_and_stderr(values):
  """`(mean, standard error, count)` of a 1-D array, as Python numbers."""
  stderr = (values.std(ddof=1) / math.sqrt(values.size) if values.size > 1
            else math.nan)
  return float(values.mean()), float(stderr), int(values.size)


def bits_per_dim_values(
    glow: Glow, dataset: Iterable, *, seed: int = 0, num_samples: int = 1,
    dequantizer: Optional[VariationalDequantizer] = None) -> np.ndarray:
  """The bits/dim of every image of `dataset`, as `evaluate` draws them.

  Two models evaluated on the same batches with the same `seed` see the same
  dequantization noise, so their per-image differences are paired: their
  standard error is far smaller than that of either mean. With `num_samples`
  K > 1, the K-sample importance-weighted bound of each image over its K
  draws of `bits_per_dim_draws`, `b_k` in bits (D dimensions):

  ```none
  -log((1/K) sum_k 2**(-D b_k)) / D      (log-mean-exp, in float64)
  b_k = -log p(x + u_k) / (D ln 2),                   u_k ~ U[0, 1)^D
  b_k = -(log p(x + u_k) - log q(u_k | x)) / (D ln 2), u_k ~ q(u | x)
  ```

  It never exceeds the mean of the image's own K values (Jensen), and it
  bounds -log P(x) / (D ln 2) from above, tighter on average as K grows.
  K = 1 is the single-sample value `b_1`.

  Args:
    glow: a `tfp_glow.Glow`.
    dataset: batches as `evaluate` takes; what the Glow does not read
      (labels of an unconditional Glow, a context of a Glow without one) is
      ignored.
    seed: Python `int`. Default value: 0.
    num_samples: Python `int` K >= 1. Default value: 1.
    dequantizer: `None` (uniform noise) or a `VariationalDequantizer` of
      the Glow (q as proposal). Default value: `None`.

  Returns:
    float64 numpy array `[N]`, one value per image, in dataset order.

  Raises:
    TypeError, ValueError: for a bad `num_samples` or `dequantizer`.
  """
  draws = bits_per_dim_draws(glow, dataset, seed=seed, num_samples=num_samples,
                             dequantizer=dequantizer)
  if num_samples == 1:
    return draws[0]
  nats = -draws * (glow.num_dims * math.log(2.0))
  top = nats.max(axis=0)
  log_mean = top + np.log(np.mean(np.exp(nats - top), axis=0))
  return -log_mean / (glow.num_dims * math.log(2.0))


def bits_per_dim_draws(
    glow: Glow, dataset: Iterable, *, seed: int = 0, num_samples: int = 1,
    dequantizer: Optional[VariationalDequantizer] = None) -> np.ndarray:
  """Single-sample bits/dim of `num_samples` dequantization draws per image.

  Batch `i` of N images runs as one batch of K * N (the images repeated K
  times, K times the memory), drawn with the stateless seed `(seed, i)`:
  `Glow.bits_per_dim` (u ~ U[0, 1)^D), or with a `dequantizer`
  `dequantizer.bits_per_dim(glow, ...)` (u ~ q(u | x), the ELBO; the same
  draws as its `num_samples=K`). Draw 0 of K = 1 is `evaluate`'s figure.

  Args:
    glow: a `tfp_glow.Glow`.
    dataset: batches as `evaluate` takes.
    seed: Python `int`. Default value: 0.
    num_samples: Python `int` K >= 1. Default value: 1.
    dequantizer: `None` or a `VariationalDequantizer` of the Glow. Default
      value: `None`.

  Returns:
    float64 numpy array `[K, N]`: draw k of image n.

  Raises:
    TypeError, ValueError: for a bad `num_samples` or `dequantizer`.
  """
  _checked_bound(glow, num_samples, dequantizer)
  draws = _common.functions(glow).draws(num_samples, dequantizer)
  values = []
  for i, batch in enumerate(dataset):
    parts = _common.batch_parts(batch, glow, 'tasks.evaluate')
    values.append(draws(parts, tf.constant([seed, i], tf.int32)).numpy())
  return np.concatenate(values, axis=1).astype(np.float64)


def _checked_bound(glow, num_samples, dequantizer):
  """Raises unless `num_samples` is an int >= 1 and `dequantizer` fits."""
  _validation.positive_int('num_samples', num_samples)
  if dequantizer is None:
    return
  if not isinstance(dequantizer, VariationalDequantizer):
    raise TypeError('`dequantizer` must be None or a VariationalDequantizer; '
                    f'got {type(dequantizer).__name__}.')
  config = dequantizer.get_config()
  fits = (tuple(config['image_shape']), config['num_bits'], config['dtype'])
  wanted = (tuple(glow.image_shape), glow.num_bits, glow.dtype.name)
  if fits != wanted:
    raise ValueError(
        "`dequantizer` must have the Glow's image_shape, num_bits and dtype "
        f'{wanted}; got a dequantizer of {fits}.')


def evaluate_run(run_dir: str, split: Optional[str] = None, *,
                 batch_size: Optional[int] = None,
                 num_examples: Optional[int] = None,
                 data_dir: Optional[str] = None, seed: int = 0,
                 num_samples: int = 1) -> Evaluation:
  """`evaluate` of the newest checkpoint of `run_dir` on a split of its data.

  `split` defaults to the dataset's held-out split, `batch_size` and
  `num_examples` to the run's evaluation settings. A variational run is
  evaluated with its q(u | x) (`runs.load_dequantizer`); `num_samples` K > 1
  adds the K-sample importance-weighted bound (K times the memory of a
  batch: lower `batch_size` if it does not fit).
  """
  _validation.positive_int('num_samples', num_samples)
  config = presets.Config.from_dict(runs.read_training_config(run_dir))
  glow = runs.load_glow(run_dir)
  dequantizer = runs.load_dequantizer(run_dir)
  dataset = data.load(
      config.dataset, split or data.held_out_split(config.dataset),
      batch_size=batch_size or config.eval_batch_size,
      image_size=config.image_size, num_bits=config.num_bits,
      labels=config.conditional, context=config.context, data_dir=data_dir,
      cache=False, num_examples=num_examples or config.eval_examples)
  return evaluate(glow, dataset, seed=seed, num_samples=num_samples,
                  dequantizer=dequantizer)


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
      labels=config.conditional, context=config.context, shuffle=True,
      flip=config.flip,
      seed=config.seed, epochs=None, start_epoch=first_epoch,
      steps_per_epoch=steps, drop_remainder=True,
      num_examples=config.train_examples, data_dir=data_dir)


def _held_out_data(config, data_dir):
  return data.load(
      config.dataset, data.held_out_split(config.dataset),
      batch_size=config.eval_batch_size, image_size=config.image_size,
      num_bits=config.num_bits, labels=config.conditional,
      context=config.context, num_examples=config.eval_examples,
      data_dir=data_dir)


def _callbacks(model, config, run_dir, manager, held_out, evaluations,
               resume, scale, data_dir):
  """Held-out bits/dim and a sample grid each epoch, then the run files."""
  glow = model.glow

  def on_epoch_end(epoch, logs):
    evaluation = evaluate(glow, held_out, seed=config.seed,
                          dequantizer=model.dequantizer)
    evaluations[epoch + 1] = evaluation
    if logs is not None:
      logs['val_bits_per_dim'] = evaluation.bits_per_dim

  held_out_bpd = keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)
  if config.context is None:
    # samples/epoch_NNN_tT.png: 8 rows of 8 samples at the config's
    # temperature.
    samples = glow_callbacks.SampleGrid(
        os.path.join(run_dir, runs.SAMPLES_DIR),
        temperatures=(config.temperature,), num_samples=64, seed=config.seed,
        rows=8, scale=scale)
  else:
    samples = _context_grids(glow, config, run_dir, scale, data_dir)
  return [held_out_bpd, samples] + runs.training_callbacks(
      run_dir, manager, append=resume)


def _context_grids(glow, config, run_dir, scale, data_dir):
  """samples/epoch_NNN.png each epoch: `grids.context_sample_grid` of 10
  held-out examples (SampleGrid's samples would need a context)."""
  batch = _common.spread_batch(config, None, _GRID_ROWS, data_dir, glow)

  def on_epoch_end(epoch, logs):
    del logs
    grids.context_sample_grid(
        glow, os.path.join(run_dir, runs.SAMPLES_DIR,
                           f'epoch_{epoch + 1:03d}.png'),
        batch, seed=config.seed, scale=scale)

  return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def _final_grid(glow, config, run_dir, scale, data_dir):
  """samples/temperatures.png, or samples/context_samples.png (a context)."""
  folder = os.path.join(run_dir, runs.SAMPLES_DIR)
  if config.context is None:
    return grids.sample_grid(glow, os.path.join(folder, 'temperatures.png'),
                             seed=config.seed, scale=scale)
  batch = _common.spread_batch(config, None, _GRID_ROWS, data_dir, glow)
  return grids.context_sample_grid(
      glow, os.path.join(folder, 'context_samples.png'), batch,
      seed=config.seed, scale=scale)


class _Budget(keras.callbacks.Callback):
  """Stops `fit` once `seconds` have passed since it began; tracks progress.

  `progress`, a float32 variable read by `_BudgetCosine`, is how far the run
  is towards its end, whichever comes first: the fraction spent of the
  budget left after the first step (which traces the step function: tens of
  seconds on a CPU in which no learning happens), or the fraction of this
  `fit`'s steps taken. So a machine fast enough to finish the epochs inside
  the budget still ends its cosine at 0, as a run without a budget does.
  """

  def __init__(self, seconds, clock=time.time):
    super().__init__()
    self.seconds = float(seconds)
    self._clock = clock   # Seconds, as `time.time` (a test's fake clock).
    self.progress = tf.Variable(0.0, trainable=False, dtype=tf.float32,
                                name='budget_progress')
    self._deadline = self._first_step_end = self._first_epoch = None
    self._steps_taken = 0

  def on_train_begin(self, logs=None):
    self._deadline = self._clock() + self.seconds

  def on_epoch_begin(self, epoch, logs=None):
    if self._first_epoch is None:   # `fit`'s initial_epoch (a resumed run).
      self._first_epoch = epoch

  def on_train_batch_begin(self, batch, logs=None):
    if self._first_step_end is not None:
      left = max(1e-6, self._deadline - self._first_step_end)
      by_time = (self._clock() - self._first_step_end) / left
      self.progress.assign(min(1.0, max(by_time, self._step_fraction())))

  def on_train_batch_end(self, batch, logs=None):
    now = self._clock()
    self._steps_taken += 1
    if self._first_step_end is None:
      self._first_step_end = now
    if now >= self._deadline:
      self.model.stop_training = True

  def _step_fraction(self):
    """Steps taken over the steps of this `fit` (0 if it does not know)."""
    epochs, steps = self.params.get('epochs'), self.params.get('steps')
    if not epochs or not steps:
      return 0.0
    return self._steps_taken / ((epochs - (self._first_epoch or 0)) * steps)


class _BudgetCosine(keras.optimizers.schedules.LearningRateSchedule):
  """`learning_rate * (1 + cos(pi * progress)) / 2`, progress in [0, 1] the
  fraction of a wall-clock budget spent (a variable `_Budget` updates)."""

  def __init__(self, learning_rate, progress):
    super().__init__()
    self.learning_rate = float(learning_rate)
    self.progress = progress

  def __call__(self, step):
    del step  # Time, not steps, sets the decay.
    fraction = tf.clip_by_value(tf.cast(self.progress, tf.float32), 0.0, 1.0)
    return self.learning_rate * 0.5 * (1.0 + tf.cos(math.pi * fraction))

  def get_config(self):
    # A budget's schedule lives in the Python process that trains; run
    # directories store the optimizer's state, never its schedule.
    return {'learning_rate': self.learning_rate}
