"""`GlowModel`: trains a `tfp_glow.Glow` with Keras `compile` and `fit`.

The same code runs under Keras 3 (`import keras`) and under tf_keras
(`TF_USE_LEGACY_KERAS=1`); see `tfp_glow._keras`.
"""

import math
import numbers

import numpy as np
import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import bijectors as gb
from tfp_glow import callbacks as glow_callbacks
from tfp_glow._keras import IS_LEGACY
from tfp_glow._keras import keras
from tfp_glow.glow import Glow

__all__ = ['GlowModel', 'LinearWarmup', 'default_optimizer']

_OPTIMIZERS = ('adam', 'adamax')
_NO_ERROR = -1  # Value of the guard record while everything is finite.


@keras.utils.register_keras_serializable(package='tfp_glow')
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """Learning rate rising linearly over the first `warmup_steps` steps.

  ```none
  lr(step) = learning_rate(step) * min(1, (step + 1) / warmup_steps)
  ```

  `step` counts optimizer steps (batches), not epochs, so the first update
  already uses a small but non-zero rate.

  Args:
    learning_rate: Python `float` > 0, or a `LearningRateSchedule` to warm up.
    warmup_steps: Python `int` >= 1.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> schedule = LinearWarmup(1e-3, warmup_steps=4)
  >>> [round(float(schedule(s)), 6) for s in range(5)]
  [0.00025, 0.0005, 0.00075, 0.001, 0.001]
  """

  def __init__(self, learning_rate, warmup_steps: int):
    super().__init__()
    if not isinstance(learning_rate,
                      keras.optimizers.schedules.LearningRateSchedule):
      learning_rate = _positive_float('learning_rate', learning_rate)
    self.learning_rate = learning_rate
    self.warmup_steps = _validation.positive_int('warmup_steps', warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    base = self.learning_rate
    base = base(step) if callable(base) else tf.constant(base, tf.float32)
    fraction = tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
    return tf.cast(base, tf.float32) * fraction

  def get_config(self):
    learning_rate = self.learning_rate
    if callable(learning_rate):
      learning_rate = keras.optimizers.schedules.serialize(learning_rate)
    return {'learning_rate': learning_rate, 'warmup_steps': self.warmup_steps}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    if isinstance(config['learning_rate'], dict):
      config['learning_rate'] = keras.optimizers.schedules.deserialize(
          config['learning_rate'])
    return cls(**config)


def default_optimizer(learning_rate=1e-3, *, warmup_steps: int = 500,
                      clip_norm=5.0, kind: str = 'adam'):
  """Adam or Adamax with linear warmup and global-norm gradient clipping.

  Glow diverges for some seeds without warmup (openai/glow#37,
  y0ast/Glow-PyTorch#1); these defaults keep the first steps small and bound
  every update. `clip_norm` bounds the global norm of the gradient of the
  bits/dim loss.

  Args:
    learning_rate: Python `float` > 0, the rate after warmup.
      Default value: `1e-3` (the paper's).
    warmup_steps: Python `int` >= 1, optimizer steps of linear warmup.
      Default value: `500`.
    clip_norm: Python `float` > 0 or `None` (no clipping): the
      `global_clipnorm` of the optimizer. Default value: `5.0`.
    kind: `'adam'` or `'adamax'`. Default value: `'adam'`.

  Returns:
    A Keras optimizer of the Keras flavour in use.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> opt = default_optimizer(1e-3, warmup_steps=100, kind='adamax')
  >>> type(opt).__name__
  'Adamax'
  """
  _validation.one_of('kind', kind, _OPTIMIZERS)
  if clip_norm is not None:
    clip_norm = _positive_float('clip_norm', clip_norm)
  schedule = LinearWarmup(learning_rate, warmup_steps)
  cls = keras.optimizers.Adam if kind == 'adam' else keras.optimizers.Adamax
  return cls(learning_rate=schedule, global_clipnorm=clip_norm)


class GlowModel(keras.Model):
  """A Keras model that trains a `tfp_glow.Glow` by maximum likelihood.

  `compile` takes no loss: the loss is the negative log-likelihood in bits per
  dimension of the dequantized batch,

  ```none
  x = images + u,  u ~ U[0, 1)^D            (inside train_step)
  bits_per_dim = -log p(x) / (D ln 2)
  loss = mean(bits_per_dim) + weight_y * mean(bits_y)    (bits_y: see below)
  ```

  and `fit`, `evaluate` and the fit logs report `loss` and `bits_per_dim`
  (`val_loss`, `val_bits_per_dim` for validation data).

  **Data.** Datasets (or arrays) yield integer images `[N, H, W, C]` in
  `[0, 2**num_bits)` (uint8 or any int or float dtype holding integers), or
  `(images, labels)` with int class ids `[N]`. Labels are used only by a
  class-conditional Glow (`num_classes` set), which requires them, and are
  ignored otherwise, so `tfds.load(..., as_supervised=True)` works for both.
  The dequantization noise of training step `t` is a pure function of
  `(noise_seed, t)`, drawn for the global batch and sliced per replica, so a
  run resumed from a checkpoint draws the same noise as an uninterrupted one,
  and an evenly split batch gets the same noise with 1 or N replicas.
  `evaluate` uses the same fixed noise seed for every batch.

  **Data-dependent init.** The ActNorm layers must be initialised from data
  before the first step. `fit` does it automatically, once: if
  `glow.is_initialized` is False, it takes the first `init_batch_size` images
  (and labels) of the training data, dequantizes them with a noise seeded by
  `noise_seed`, and calls `initialize`, outside the replicated step and in
  the cross-replica context of the model's `tf.distribute` strategy, so every
  replica holds the same ActNorm parameters. The init is deterministic if the
  data's first `init_batch_size` images are (shuffle with a seed, or call
  `initialize` yourself). A restored or already initialised model is never
  re-initialised.

  **Non-finite steps.** `train_step` checks the loss and every gradient and
  applies no update when one is NaN or inf; the `NonFiniteGuard` callback that
  `fit` adds then stops training with a message naming the loss or the
  variable whose gradient went non-finite.

  **Class-conditional Glow.** With `glow.num_classes` set, the top prior
  depends on the label, and, as in the paper, a linear classifier on the
  spatial mean of the top latent adds `weight_y * bits_y`, where `bits_y` is
  its cross-entropy in bits.

  **Variables.** Every variable of `glow` is a variable of the model:
  `model.trainable_weights` holds `glow.trainable_variables` (plus the
  classifier's), `tf.train.Checkpoint(model=model, optimizer=...)` and
  `model.save_weights` save and restore them, including the ActNorm
  `initialized` flags.

  Args:
    glow: a `tfp_glow.Glow`, built inside the strategy scope for distributed
      training.
    init_batch_size: Python `int` >= 1, images used by the automatic
      data-dependent init. Default value: `256`.
    noise_seed: Python `int`, seed of the dequantization noise (training,
      evaluation and init). Default value: `0`.
    weight_y: Python `float` >= 0, weight of the classification loss of a
      class-conditional Glow; ignored otherwise.
      Default value: `0.01`.
    name: Python `str`. Default value: `'glow_model'`.

  Raises:
    TypeError: if `glow` is not a `tfp_glow.Glow`.
    TypeError, ValueError: for any other bad argument; the message names it.

  #### Examples

  ```python
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=2,
                       hidden_channels=16, seed=0)
  model = tfp_glow.model.GlowModel(glow, init_batch_size=256)
  model.compile()                                # default_optimizer()
  images = tf.data.Dataset.from_tensor_slices(uint8_images).batch(16)
  history = model.fit(images, epochs=2)
  history.history['bits_per_dim']
  model.evaluate(images, return_dict=True)       # {'loss': .., 'bits_per_dim': ..}
  ```
  """

  def __init__(self, glow, *, init_batch_size: int = 256, noise_seed: int = 0,
               weight_y=0.01, name: str = 'glow_model', **kwargs):
    super().__init__(name=name, **kwargs)
    if not isinstance(glow, Glow):
      raise TypeError('`glow` must be a tfp_glow.Glow; got '
                      f'{type(glow).__name__}.')
    self._init_batch_size = _validation.positive_int('init_batch_size',
                                                     init_batch_size)
    self._noise_seed = _int('noise_seed', noise_seed)
    self._weight_y = _nonnegative_float('weight_y', weight_y)
    self.glow = glow
    self._glow_variables = list(glow.variables)
    self._glow_paths = _variable_paths(glow)
    self._classifier = None
    if glow.num_classes:
      self._classifier = keras.layers.Dense(
          glow.num_classes, kernel_initializer='zeros', dtype=glow.dtype.name,
          name='class_logits')
      self._classifier.build((None, _top_channels(glow)))
    self._loss_tracker = keras.metrics.Mean(name='loss')
    self._bpd_tracker = keras.metrics.Mean(name='bits_per_dim')
    # A plain Python holder, so that neither Keras nor tf.train.Checkpoint
    # tracks (or saves) the per-run guard record.
    self._guard = _GuardRecord()
    self.built = True

  # ------------------------------------------------------------------ API.

  @property
  def init_batch_size(self):
    return self._init_batch_size

  @property
  def weight_y(self):
    return self._weight_y

  @property
  def metrics(self):
    return [self._loss_tracker, self._bpd_tracker]

  def call(self, x, labels=None):
    """Log-density `glow.log_prob(x, labels)` of dequantized images `x`."""
    return self.glow.log_prob(tf.cast(x, self.glow.dtype), labels=labels)

  def compile(self, optimizer=None, **kwargs):
    """Configures training; the loss is built in (see the class docstring).

    Args:
      optimizer: a Keras optimizer or its name, or `None` for
        `default_optimizer()` (Adam, warmup, clipping). Default value: `None`.
      **kwargs: other arguments of `keras.Model.compile` (`jit_compile`,
        `steps_per_execution`, `run_eagerly`, ...), except `loss`.

    Raises:
      ValueError: if a `loss` is given.
    """
    if kwargs.get('loss') is not None:
      raise ValueError('GlowModel computes its own loss (bits/dim); `loss` '
                       f'must be None; got loss={kwargs["loss"]!r}.')
    kwargs.pop('loss', None)
    if optimizer is None:
      optimizer = default_optimizer()
    super().compile(optimizer=optimizer, **kwargs)

  def initialize(self, images, labels=None):
    """Runs the Glow's data-dependent init on integer images, once.

    Dequantizes `images` with noise seeded by `noise_seed` and calls
    `glow.initialize` in the cross-replica context of the model's strategy.
    Does nothing to layers already initialised.

    Args:
      images: integer pixel values `[N, H, W, C]` in `[0, 2**num_bits)`.
      labels: class ids `[N]`, required iff the Glow is class-conditional.

    Raises:
      ValueError: if the Glow is class-conditional and `labels` is None.
    """
    labels = self._check_labels(labels)
    x = self._dequantize(images, seed=(self._noise_seed, -1))
    with self.distribute_strategy.scope():
      self.glow.initialize(x, labels=labels)

  def fit(self, x=None, y=None, **kwargs):
    """`keras.Model.fit`, after the automatic data-dependent init.

    If the Glow is not initialised yet, runs `initialize` on the first
    `init_batch_size` images (and labels) of `x` (and `y`). Adds a
    `NonFiniteGuard` to `callbacks` (passed by keyword) unless one is there.
    All other arguments are those of `keras.Model.fit`.
    """
    if not self.glow.is_initialized:
      images, labels = _take_init_batch(x, y, self._init_batch_size)
      self.initialize(images, labels if self.glow.num_classes else None)
    self._guard.reset()
    callbacks = list(kwargs.pop('callbacks', None) or [])
    if not any(isinstance(c, glow_callbacks.NonFiniteGuard)
               for c in callbacks):
      callbacks.insert(0, glow_callbacks.NonFiniteGuard())
    return super().fit(x, y, callbacks=callbacks, **kwargs)

  def nonfinite_message(self):
    """What the last `fit` found non-finite (a `str`), or `None`."""
    index = self._guard.index()
    if index == _NO_ERROR:
      return None
    if index == 0:
      return ('the loss is not finite; no update was applied and training '
              'stopped.')
    variable = self.trainable_variables[index - 1]
    path = self._glow_paths.get(id(variable), variable.name)
    return (f'the gradient of variable {path!r} ({variable.name}, trainable '
            f'variable {index - 1}) is not finite; no update was applied and '
            'training stopped.')

  # ---------------------------------------------------------- Keras steps.

  def train_step(self, data):
    images, labels = self._unpack(data)
    step = tf.cast(self.optimizer.iterations, tf.int64)
    x = self._dequantize(images, (self._noise_seed, step), global_batch=True)
    variables = self.trainable_variables
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      loss, bpd = self._loss(x, labels)
      # The optimizer sums gradients over replicas.
      scaled_loss = loss / num_replicas
    grads = tape.gradient(scaled_loss, variables)
    bad = _first_nonfinite(loss, grads)
    ok = tf.logical_and(tf.equal(bad, _NO_ERROR),
                        tf.equal(self._guard.variable, _NO_ERROR))
    _apply_if(ok, self.optimizer, grads, variables)
    self._guard.record(bad)
    return self._update_metrics(loss, bpd)

  def test_step(self, data):
    images, labels = self._unpack(data)
    x = self._dequantize(images, (self._noise_seed, -2), global_batch=True)
    loss, bpd = self._loss(x, labels)
    return self._update_metrics(loss, bpd)

  # -------------------------------------------------------------- helpers.

  def _unpack(self, data):
    if isinstance(data, (tuple, list)):
      if len(data) not in (1, 2):
        raise ValueError('GlowModel data must be `images` or `(images, '
                         f'labels)`; got a tuple of {len(data)} elements.')
      images, labels = data[0], (data[1] if len(data) == 2 else None)
    else:
      images, labels = data, None
    labels = labels if self.glow.num_classes else None
    return images, self._check_labels(labels)

  def _check_labels(self, labels):
    if self.glow.num_classes and labels is None:
      raise ValueError(
          'The Glow is class-conditional (num_classes='
          f'{self.glow.num_classes}): the data must be (images, labels); '
          'got images only.')
    return labels

  def _dequantize(self, images, seed, global_batch=False):
    """`images + u`, `u ~ U[0, 1)` a pure function of `seed` (see `_uniform`).

    With `global_batch`, replica r of R takes the slice r of the noise of the
    global batch, so an evenly split batch gets the same noise for any R.
    """
    images = tf.cast(images, self.glow.dtype)
    offset = tf.constant(0, tf.int64)
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if global_batch and num_replicas > 1:
      context = tf.distribute.get_replica_context()
      replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
      offset = replica * tf.size(images, out_type=tf.int64)
    return images + _uniform(tf.shape(images), seed, offset, self.glow.dtype)

  def _loss(self, x, labels):
    """Returns (scalar loss, per-example bits/dim)."""
    log_prob = self.glow.log_prob(x, labels=labels)
    bpd = -log_prob / (self.glow.num_dims * math.log(2.0))
    loss = tf.reduce_mean(bpd)
    if self._classifier is not None and self._weight_y > 0.0:
      logits = self._class_logits(x)
      bits_y = tf.nn.sparse_softmax_cross_entropy_with_logits(
          tf.cast(labels, tf.int32), logits) / math.log(2.0)
      loss += self._weight_y * tf.reduce_mean(bits_y)
    return loss, bpd

  def _class_logits(self, x):
    """Linear classifier on the spatial mean of the top latent (openai/glow)."""
    # Everything before the top prior; in a traced step TFP's cache returns
    # the outputs `log_prob` already computed for the same `x`.
    encoder = gb.Chain(self.glow.bijector.bijectors[:-2])
    h = encoder.inverse(x)[..., :_top_channels(self.glow)]
    return self._classifier(tf.reduce_mean(h, axis=[-3, -2]))

  def _update_metrics(self, loss, bpd):
    self._loss_tracker.update_state(loss)
    self._bpd_tracker.update_state(bpd)
    return {m.name: m.result() for m in self.metrics}

  # --------------------------------------- Keras 3 tracking of tf.Variables.
  # Keras 3 does not track the tf.Variables of a tf.Module attribute; these
  # overrides make the Glow's variables the model's (tf_keras tracks them by
  # itself).

  if not IS_LEGACY:

    @property
    def weights(self):
      return _merge(super().weights, self._glow_variables)

    @property
    def variables(self):
      return _merge(super().variables, self._glow_variables)

    def save_own_variables(self, store):
      super().save_own_variables(store)
      for i, variable in enumerate(self._glow_variables):
        store[f'glow_{i}'] = variable.numpy()

    def load_own_variables(self, store):
      keys = list(store.keys())
      glow_keys = [k for k in keys if k.startswith('glow_')]
      if len(glow_keys) != len(self._glow_variables):
        raise ValueError(
            f'The weights file holds {len(glow_keys)} Glow variables; this '
            f'GlowModel has {len(self._glow_variables)}. Build the Glow with '
            'the configuration the weights were saved with.')
      super().load_own_variables(
          {k: store[k] for k in keys if not k.startswith('glow_')})
      for i, variable in enumerate(self._glow_variables):
        variable.assign(store[f'glow_{i}'])


class _GuardRecord:
  """Per-run record of the first non-finite step, invisible to tracking."""

  def __init__(self):
    self.variable = tf.Variable(
        _NO_ERROR, dtype=tf.int32, trainable=False,
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        name='nonfinite_guard')

  def record(self, bad):
    """Keeps the first error: `bad` if nothing was recorded yet."""
    keep = tf.equal(self.variable, _NO_ERROR)
    self.variable.assign(tf.where(keep, bad, self.variable))

  def reset(self):
    self.variable.assign(_NO_ERROR)

  def index(self):
    return int(self.variable.numpy())


def _fmix32(h):
  """MurmurHash3's 32-bit finalizer (a bijective avalanche mix of uint32)."""
  def xorshift(h, bits):
    return tf.bitwise.bitwise_xor(
        h, tf.bitwise.right_shift(h, tf.constant(bits, tf.uint32)))
  h = xorshift(h, 16) * tf.constant(0x85EBCA6B, tf.uint32)
  h = xorshift(h, 13) * tf.constant(0xC2B2AE35, tf.uint32)
  return xorshift(h, 16)


def _uniform(shape, seed, offset, dtype):
  """U[0, 1) noise: element i is a hash of `(seed, offset + i)`.

  Counter-based, in plain integer ops, so it gives the same numbers with and
  without XLA (`tf.random.stateless_uniform` does not: under `jit_compile` it
  draws other numbers for the same seed).
  """
  seed0, seed1 = (tf.cast(tf.cast(s, tf.int64), tf.uint32) for s in seed)
  golden = tf.constant(0x9E3779B9, tf.uint32)
  key = _fmix32(tf.bitwise.bitwise_xor(_fmix32(seed0 * golden + 1), seed1))
  index = tf.range(tf.reduce_prod(tf.cast(shape, tf.int64)), dtype=tf.int64)
  counter = tf.cast(index + tf.cast(offset, tf.int64), tf.uint32)
  h = _fmix32(tf.bitwise.bitwise_xor(_fmix32(counter * golden), key) + key)
  top24 = tf.bitwise.right_shift(h, tf.constant(8, tf.uint32))
  u = tf.cast(top24, tf.float32) * (2.0**-24)
  return tf.reshape(tf.cast(u, dtype), shape)


def _first_nonfinite(loss, grads):
  """-1 if all finite, 0 for the loss, i + 1 for the gradient i (all replicas).

  The flags are summed over replicas, so every replica gets the same answer.
  """
  flags = [tf.logical_not(tf.math.is_finite(loss))]
  for g in grads:
    if g is None:
      flags.append(tf.constant(False))
    else:
      flags.append(tf.logical_not(tf.reduce_all(tf.math.is_finite(g))))
  flags = tf.cast(tf.stack(flags), tf.float32)
  context = tf.distribute.get_replica_context()
  if context is not None:
    flags = context.all_reduce(tf.distribute.ReduceOp.SUM, flags)
  positions = tf.range(tf.size(flags, out_type=tf.int32), dtype=tf.int32)
  large = tf.fill(tf.shape(positions), tf.int32.max)
  first = tf.reduce_min(tf.where(flags > 0.0, positions, large))
  return tf.where(first == tf.int32.max, _NO_ERROR, first)


def _apply_if(ok, optimizer, grads, variables):
  """`optimizer.apply_gradients` if `ok` (the same on every replica).

  The condition runs in cross-replica context, as in Keras'
  LossScaleOptimizer: `tf.distribute` does not allow a `merge_call` (which
  `apply_gradients` makes) inside a `tf.cond` in replica context.
  """
  pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]

  def apply_in_replica(grads_and_vars):
    optimizer.apply_gradients(grads_and_vars)

  def cross_replica(distribution, ok, grads_and_vars):
    ok = distribution.experimental_local_results(ok)[0]

    def apply_fn():
      distribution.extended.call_for_each_replica(
          apply_in_replica, args=(grads_and_vars,))

    tf.cond(ok, apply_fn, lambda: None)

  tf.distribute.get_replica_context().merge_call(
      cross_replica, args=(ok, pairs))


def _take_init_batch(x, y, n):
  """The first `n` images (and labels) of `fit`'s training data."""
  if isinstance(x, tf.data.Dataset):
    element = next(iter(x.unbatch().take(n).batch(n)))
    if isinstance(element, (tuple, list)):
      return element[0], (element[1] if len(element) > 1 else None)
    return element, None
  if x is None:
    raise ValueError('GlowModel.fit needs training data `x` for the '
                     'data-dependent init; got x=None.')
  labels = None if y is None else y[:n]
  return x[:n], labels


def _variable_paths(module):
  """{id(variable): attribute path} for the variables of a tf.Module."""
  paths = {}
  for path, variable in module._flatten(  # pylint: disable=protected-access
      predicate=lambda v: isinstance(v, tf.Variable), with_path=True):
    paths.setdefault(id(variable), '.'.join(str(p) for p in path))
  return paths


def _top_channels(glow):
  """Active channels of the top level: C * 2**(L + 1)."""
  return glow.top_channels


def _merge(first, second):
  seen = {id(v) for v in first}
  return list(first) + [v for v in second if id(v) not in seen]


def _int(name, value):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f'`{name}` must be an int; got {value!r} of type '
                    f'{type(value).__name__}.')
  return int(value)


def _nonnegative_float(name, value):
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f'`{name}` must be a float; got {value!r} of type '
                    f'{type(value).__name__}.')
  if not (np.isfinite(value) and value >= 0):
    raise ValueError(f'`{name}` must be finite and >= 0; got {name}={value}.')
  return float(value)


def _positive_float(name, value):
  value = _nonnegative_float(name, value)
  if value <= 0:
    raise ValueError(f'`{name}` must be > 0; got {name}={value}.')
  return value
