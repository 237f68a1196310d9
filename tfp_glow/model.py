"""`GlowModel`: trains a `tfp_glow.Glow` with Keras `compile` and `fit`.

The same code runs under Keras 3 (`import keras`) and under tf_keras
(`TF_USE_LEGACY_KERAS=1`); see `tfp_glow._keras`.
"""

import inspect
import math
import numbers

import tensorflow as tf

from tfp_glow import _batches
from tfp_glow import _distribute
from tfp_glow import _guard
from tfp_glow import _inputs
from tfp_glow import _noise
from tfp_glow import _numbers
from tfp_glow import _validation
from tfp_glow import callbacks as glow_callbacks
from tfp_glow._keras import IS_LEGACY
from tfp_glow._keras import GlowModelMixin
from tfp_glow._keras import as_model_weights
from tfp_glow._keras import keras
from tfp_glow._keras import optimizer_is_built
from tfp_glow._keras import register_serializable
from tfp_glow._keras import warn_if_policy_ignored
from tfp_glow._optimizers import LinearWarmup
from tfp_glow._optimizers import default_optimizer
from tfp_glow.glow import Glow

__all__ = ['GlowModel', 'LinearWarmup', 'default_optimizer']

_INIT_NOISE_STEP = -1   # Second seed of the noise of the data-dependent init.
_EVAL_NOISE_STEP = -2   # Second seed of the noise of `evaluate`.


@register_serializable
class GlowModel(GlowModelMixin, keras.Model):
  """A Keras model that trains a `tfp_glow.Glow` by maximum likelihood.

  `compile` takes no loss: the loss is the negative log-likelihood in bits per
  dimension of the dequantized batch,

  ```none
  x = images + u,  u ~ U[0, 1)^D            (inside train_step)
  bits_per_dim = -log p(x) / (D ln 2)
  loss = mean(bits_per_dim) + weight_y * mean(bits_y)    (bits_y: see below)
  ```

  and `fit` and `evaluate` report `loss` and `bits_per_dim` (`val_loss`,
  `val_bits_per_dim` for validation data).

  **Data.** Datasets (or arrays) yield integer images `[N, H, W, C]` in
  `[0, 2**num_bits)` (uint8 or any int or float dtype holding integers), or
  `(images, labels)` with int class ids `[N]`. Labels are used only by a
  class-conditional Glow (`num_classes` set), which requires them. The
  dequantization noise of training step `t` is a pure function of
  `(noise_seed, t)`, drawn for the global batch and sliced per replica, so a
  resumed run draws the same noise as an uninterrupted one, and an evenly
  split batch gets the same noise with 1 or N replicas. `evaluate` uses one
  fixed noise seed for every batch.

  **Data checks.** Every batch of `fit` and `evaluate` (`train_step`,
  `test_step`), the batch of `initialize` (and of the automatic init in
  `fit`) and the served images of `export` are checked, whatever the Glow's
  `validate_args`:

  ```none
  static, in Python when a step is traced: TypeError / ValueError
    images: int or float dtype; shape [N, H, W, C] = [N, *glow.image_shape]
    labels: int dtype; shape [N]   (class-conditional Glow; else ignored)
  values, as assertions the step depends on: tf.errors.InvalidArgumentError
    images: finite; integer values; in [0, 2**num_bits)
    labels: in [0, num_classes); one per image
  ```

  Each message names `images` or `labels`, states the rule, shows what was
  given and says how to fix it (float images in [0, 1]: `tf.cast(tf.round(
  images * 255), tf.uint8)`). A failing batch raises before anything is
  computed from it, so no update is applied. Labels whose values Python
  knows (arrays given to `initialize`) are checked in Python: `ValueError`.
  Once `fit` traced its step for data of several shapes, `tf.function`
  relaxes the shapes the step is traced for; shapes it no longer knows are
  then asserted at run time (`InvalidArgumentError`, same message). The
  value checks cost about 1% of a training step (a 28x28x1, 2 x 4 steps,
  width 64 Glow, batch 16, on CPU). `call` (dequantized `x`) is not checked.

  **Data-dependent init.** `fit` runs the ActNorm init automatically, once:
  if `glow.is_initialized` is False it calls `initialize` on the first
  `init_batch_size` images (and labels) of the training data. Under a
  `tf.distribute` strategy every replica, of every worker, gets the first
  replica's values. A restored model is never re-initialised.

  **Non-finite steps.** A step whose loss or a gradient is NaN or inf
  applies no update; the `NonFiniteGuard` that `fit` adds stops training
  with a message naming the loss or the variable.

  **Class-conditional Glow.** With `glow.num_classes` set, as in the paper a
  linear classifier on the spatial mean of the top latent adds
  `weight_y * bits_y`, its cross-entropy in bits.

  **Precision.** The model computes in the Glow's dtypes, whatever the Keras
  dtype policy: mixed precision is `Glow(..., compute_dtype=tf.bfloat16)`
  (variables, log-dets and the loss stay float32). Under a mixed Keras
  policy, a Glow without `compute_dtype` warns.

  **Variables.** Every variable of `glow` is a variable of the model, so
  `tf.train.Checkpoint(model=model, optimizer=model.optimizer)`,
  `save_weights`/`load_weights`, `ModelCheckpoint` and `BackupAndRestore`
  save and restore them, including the ActNorm `initialized` flags. `compile`
  builds the optimizer, so a `load_weights` after `compile` also restores its
  state (moments and step). A user's model holding a `GlowModel` as a layer
  has the Glow's variables among its own (trainable, saved, summarised), and
  may add Keras regularisers and `add_loss` terms beside it.

  **Saving.** `model.save('glow.keras')` writes the config (`get_config`:
  the Glow's constructor arguments, `init_batch_size`, `noise_seed`,
  `weight_y`), the weights (ActNorm `initialized` flags included) and the
  optimizer's state; `keras.models.load_model('glow.keras')` rebuilds the
  model, compiled and initialised (after `import tfp_glow`, which registers
  `tfp_glow>GlowModel`). A Glow with a custom `conditioner_fn` has no
  config: save its weights instead. `model.export(path)` writes a
  SavedModel that needs only TensorFlow; its default endpoint
  `serve(images)` returns the bits/dim of integer images (see `export`).
  Keras 3 and tf_keras support all of this alike. Not supported:
  whole-model `.h5` files, in either Keras, and tf_keras' legacy SavedModel
  format (`model.save(dir)` without `.keras`; a subclassed model whose
  `call` was never traced): use `.keras` files, `.weights.h5` files or
  `export`.

  **XLA.** `compile(jit_compile=True)` compiles the loss and its gradients
  with XLA, not the whole step (XLA drops the assertions of the data checks);
  see `compile`.

  Args:
    glow: a `tfp_glow.Glow`, built inside the strategy scope for distributed
      training.
    init_batch_size: Python `int` >= 1, images used by the automatic
      data-dependent init. Default value: `256`.
    noise_seed: Python `int`, seed of the dequantization noise (training,
      evaluation and init). Default value: `0`.
    weight_y: Python `float` >= 0, weight of the classification loss of a
      class-conditional Glow; ignored otherwise. Default value: `0.01`.
    name: Python `str`. Default value: `'glow_model'`.
    **kwargs: other `keras.Model` arguments, except `dtype` (the Glow's).

  Raises:
    TypeError: if `glow` is not a `tfp_glow.Glow`.
    TypeError, ValueError: for any other bad argument; the message names it.

  #### Examples

  ```python
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=2,
                       hidden_channels=16, seed=0)
  model = tfp_glow.GlowModel(glow, init_batch_size=256)
  model.compile()                                # default_optimizer()
  images = tf.data.Dataset.from_tensor_slices(uint8_images).batch(16)
  history = model.fit(images, epochs=2)
  model.evaluate(images, return_dict=True)  # {'loss': .., 'bits_per_dim': ..}
  ```
  """

  def __init__(self, glow, *, init_batch_size: int = 256, noise_seed: int = 0,
               weight_y=0.01, name: str = 'glow_model', **kwargs):
    if not isinstance(glow, Glow):
      raise TypeError('`glow` must be a tfp_glow.Glow; got '
                      f'{type(glow).__name__}.')
    dtype = kwargs.pop('dtype', None)
    if dtype is not None and getattr(dtype, 'name', dtype) != glow.dtype.name:
      raise ValueError('A GlowModel computes in the dtype of its Glow; '
                       f'`dtype` must be None or {glow.dtype.name!r}; got '
                       f'dtype={dtype!r}.')
    super().__init__(name=name, dtype=glow.dtype.name, **kwargs)
    self._init_batch_size = _validation.positive_int('init_batch_size',
                                                     init_batch_size)
    self._noise_seed = _numbers.integer('noise_seed', noise_seed)
    self._weight_y = _numbers.nonnegative_float('weight_y', weight_y)
    warn_if_policy_ignored(glow)
    self.glow = glow
    self._glow_variables = as_model_weights(glow.variables)
    self._glow_paths = _guard.variable_paths(glow)
    self._classifier = None
    if glow.num_classes:
      self._classifier = keras.layers.Dense(
          glow.num_classes, kernel_initializer='zeros', dtype=glow.dtype.name,
          name='class_logits')
      self._classifier.build((None, glow.top_channels))
    self._trackers = _Trackers()
    self._guard = _guard.GuardRecord()
    self._xla = False   # Set by `compile`.
    self.built = True

  @property
  def init_batch_size(self):
    return self._init_batch_size

  @property
  def noise_seed(self):
    return self._noise_seed

  @property
  def weight_y(self):
    return self._weight_y

  @property
  def metrics(self):
    return [self._trackers.loss, self._trackers.bits_per_dim]

  def call(self, x, labels=None):
    """Log-density `glow.log_prob(x, labels)` of dequantized images `x`.

    Not part of the data path: `x` are dequantized pixels (float, in
    `[0, 2**num_bits)`), checked only by a Glow built with
    `validate_args=True`. Integer images go to `fit`, `evaluate` and the
    SavedModel of `export`, which dequantize (and check) them.

    Args:
      x: dequantized images `[N, H, W, C]`.
      labels: class ids `[N]` of a class-conditional Glow. Default value:
        `None`.

    Returns:
      `log p(x)`, shape `[N]`, in the Glow's dtype.
    """
    return self.glow.log_prob(tf.cast(x, self.glow.dtype), labels=labels)

  def compile(self, optimizer=None, **kwargs):
    """Configures training and builds the optimizer's variables.

    With `jit_compile=True` (or Keras 3's default `'auto'` where it picks
    XLA: on a GPU, without a distribution strategy) XLA compiles the loss and
    its gradients, not the whole step: XLA drops `tf.debugging` assertions,
    so the data checks (and the non-finite guard and the update) run outside
    it, and `model.jit_compile` then reads `False`. Set it here, not later.

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
    # Read after Keras resolved 'auto'; Keras then compiles no whole step.
    self._xla = bool(self.jit_compile)
    if self._xla:
      self.jit_compile = False
    # Built now rather than in the first traced step: `fit` then traces its
    # step once instead of twice, and `load_weights` restores the
    # optimizer's state instead of skipping it.
    optimizer = self.optimizer
    if hasattr(optimizer, 'build') and not optimizer_is_built(optimizer):
      with self.distribute_strategy.scope():
        optimizer.build(self.trainable_variables)

  def initialize(self, images, labels=None):
    """Runs the Glow's data-dependent init on integer images, once.

    Checks the data as `fit` does (see the class docstring), dequantizes
    `images` with noise seeded by `noise_seed`, calls `glow.initialize` in
    the cross-replica context of the model's strategy, then copies the first
    replica's values to every replica (of every worker). Does nothing to
    layers already initialised.

    Args:
      images: integer pixel values `[N, H, W, C]` in `[0, 2**num_bits)`.
      labels: class ids `[N]`, required iff the Glow is class-conditional
        (ignored otherwise, as in `fit`'s data). Default value: `None`.

    Raises:
      TypeError, ValueError: for data breaking a static rule.
      tf.errors.InvalidArgumentError: for data breaking a value rule.
    """
    self._initialize(images, labels, 'GlowModel.initialize')

  def _initialize(self, images, labels, where):
    images, labels = self._checked(images, labels, where)
    x = self._dequantize(images, (self._noise_seed, _INIT_NOISE_STEP))
    strategy = self.distribute_strategy
    with strategy.scope():
      self.glow.initialize(x, labels=labels)
      _distribute.broadcast_from_first_replica(
          strategy, [v for v in self.glow.variables if v.dtype.is_floating])

  def fit(self, x=None, y=None, **kwargs):
    """`keras.Model.fit`, after the automatic data-dependent init.

    If the Glow is not initialised yet, runs `initialize` on the first
    `init_batch_size` images (and labels) of `x` (and `y`). Adds a
    `NonFiniteGuard` to `callbacks` (passed by keyword) unless one is there.
    All other arguments are those of `keras.Model.fit`.

    Args:
      x: training data: a batched `tf.data.Dataset` of `images` or
        `(images, labels)`, or an array of images. Default value: `None`.
      y: labels for an array `x`, or `None`. Default value: `None`.
      **kwargs: other arguments of `keras.Model.fit`.

    Returns:
      The Keras `History`.

    Raises:
      TypeError, ValueError: for data breaking a static rule.
      tf.errors.InvalidArgumentError: for data breaking a value rule.
    """
    if not self.glow.is_initialized:
      images, labels = _batches.take_init_batch(x, y,
                                                self._init_batch_size)
      self._initialize(images, labels, 'GlowModel.fit (data-dependent init)')
    self._guard.reset()
    if isinstance(x, tf.data.Dataset):
      kwargs.setdefault('shuffle', False)  # Ignored; Keras 3 warns if True.
    callbacks = list(kwargs.pop('callbacks', None) or [])
    if not any(isinstance(c, glow_callbacks.NonFiniteGuard)
               for c in callbacks):
      callbacks.insert(0, glow_callbacks.NonFiniteGuard())
    return super().fit(x, y, callbacks=callbacks, **kwargs)

  def nonfinite_message(self):
    """What the last `fit` found non-finite (a `str`), or `None`."""
    return _guard.message(self._guard.index(), self.trainable_variables,
                          self._glow_paths)

  def train_step(self, data):
    images, labels = self._unpack(data, 'GlowModel.train_step')
    step = tf.cast(self.optimizer.iterations, tf.int64)
    loss, bpd, grads = self._maybe_xla(self._loss_and_grads)(
        images, labels, step)
    variables = self.trainable_variables
    bad = _guard.first_nonfinite(loss, grads)
    ok = tf.logical_and(tf.equal(bad, _guard.NO_ERROR), self._guard.is_clear())
    _guard.apply_if(ok, self.optimizer, grads, variables)
    self._guard.record(bad)
    return self._update_metrics(loss, bpd)

  def test_step(self, data):
    images, labels = self._unpack(data, 'GlowModel.test_step')
    loss, bpd = self._maybe_xla(self._test_loss)(images, labels)
    return self._update_metrics(loss, bpd)

  def _maybe_xla(self, fn):
    """`fn`, compiled by XLA if `compile` asked for it (see `compile`)."""
    return tf.function(fn, jit_compile=True) if self._xla else fn

  def _loss_and_grads(self, images, labels, step):
    x = self._dequantize(images, (self._noise_seed, step), global_batch=True)
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      loss, bpd = self._loss(x, labels)
      # The optimizer sums gradients over replicas.
      scaled_loss = loss / num_replicas
    return loss, bpd, tape.gradient(scaled_loss, self.trainable_variables)

  def _test_loss(self, images, labels):
    x = self._dequantize(images, (self._noise_seed, _EVAL_NOISE_STEP),
                         global_batch=True)
    return self._loss(x, labels)

  def _unpack(self, data, where):
    images, labels = _batches.images_and_labels(data)
    return self._checked(images, labels, where)

  def _checked(self, images, labels, where):
    """`(images, labels)` of the data path, checked.

    Static rules (dtypes, shapes, labels known in Python) raise here, in
    Python, when a step is traced; value rules become assertions that the
    returned tensors depend on, so nothing is computed from a bad batch.
    Shapes that the trace does not know (`tf.function` relaxes the shapes of
    a function traced for several) are asserted too. `labels` are `None` for
    an unconditional Glow, whatever the data hold.
    """
    glow = self.glow
    images = _check_images(images, glow.image_shape, where)
    batch_shape = images.shape[:1] if images.shape.rank else [None]
    if not glow.num_classes:
      labels = None
    elif labels is None:
      raise ValueError(
          f'{where}: the Glow is class-conditional (num_classes='
          f'{glow.num_classes}): the data must be (images, labels) with int '
          'class ids `labels` [N]; got images only.')
    else:
      labels = _inputs.check_labels(labels, glow.num_classes, batch_shape,
                                    where)
    images, labels = _with_known_shapes(images, labels, glow.image_shape,
                                        where)
    checks = _pixel_assertions(images, glow.num_bits, where)
    if labels is not None:
      checks += _inputs.label_assertions(labels, glow.num_classes, where)
      checks.append(_batch_size_assertion(images, labels, where))
    return _after(checks, images, labels)

  def _dequantize(self, images, seed, global_batch=False):
    return _noise.dequantize(images, seed, self.glow.dtype, global_batch)

  def _bits_per_dim(self, log_prob):
    return -log_prob / (self.glow.num_dims * math.log(2.0))

  def _loss(self, x, labels):
    """Returns (scalar loss, per-example bits/dim)."""
    bpd = self._bits_per_dim(self.glow.log_prob(x, labels=labels))
    loss = tf.reduce_mean(bpd)
    if self._classifier is not None and self._weight_y > 0.0:
      logits = self._class_logits(x)
      bits_y = tf.nn.sparse_softmax_cross_entropy_with_logits(
          tf.cast(labels, tf.int32), logits) / math.log(2.0)
      loss += self._weight_y * tf.reduce_mean(bits_y)
    return loss, bpd

  def _class_logits(self, x):
    """Linear classifier on the spatial mean of the top latent (openai/glow)."""
    # In a traced step TFP's cache returns what `log_prob` computed for `x`.
    h = self.glow.encode_top(x)
    return self._classifier(tf.reduce_mean(h, axis=[-3, -2]))

  def _update_metrics(self, loss, bpd):
    self._trackers.loss.update_state(loss)
    self._trackers.bits_per_dim.update_state(bpd)
    return _distribute.step_outputs({m.name: m.result() for m in self.metrics},
                                    keras3=not IS_LEGACY)

  # Saving.

  def get_config(self):
    """The model's configuration: its Glow's constructor arguments and its own.

    `GlowModel.from_config(model.get_config())` builds the same model with
    fresh weights; `.keras` files hold this and the weights.

    Returns:
      A JSON-serialisable `dict`: `name`, `trainable`, `glow` (the
      arguments of `tfp_glow.Glow`), `init_batch_size`, `noise_seed`,
      `weight_y`.

    Raises:
      NotImplementedError: if the Glow has a custom `conditioner_fn` (a
        function has no config).
    """
    return dict(name=self.name, trainable=self.trainable,
                glow=_glow_config(self.glow),
                init_batch_size=self._init_batch_size,
                noise_seed=self._noise_seed, weight_y=self._weight_y)

  def save(self, filepath, *args, **kwargs):
    """`keras.Model.save`, which first checks that the model has a config.

    Keras writes (an empty) file before it asks for the config; this raises
    before, so a model that cannot be saved leaves no file behind.

    Args:
      filepath: Python `str` or path, ending in `.keras`.
      *args: other positional arguments of `keras.Model.save`.
      **kwargs: other arguments of `keras.Model.save`.

    Raises:
      NotImplementedError: if the Glow has a custom `conditioner_fn`.
    """
    if not IS_LEGACY or str(filepath).endswith('.keras'):
      _glow_config(self.glow)
    return super().save(filepath, *args, **kwargs)

  @classmethod
  def from_config(cls, config):
    """A `GlowModel` (with a new Glow) from `get_config()`'s output.

    Args:
      config: a `dict` from `get_config`.

    Returns:
      A `GlowModel`, not initialised: load its weights.
    """
    config = dict(config)
    glow = Glow(**config.pop('glow'))
    return cls(glow, **config)

  def compile_from_config(self, config):
    """Compiles as `get_compile_config()` says (`load_model` calls this).

    Keras skips it for a model that overrides `compile` unless the model
    overrides this too; `compile` also builds the optimizer, whose state the
    `.keras` file then restores.

    Args:
      config: a `dict` from `get_compile_config`.
    """
    self.compile(**keras.saving.deserialize_keras_object(config))

  def export(self, filepath,
             format='tf_saved_model',  # pylint: disable=redefined-builtin
             verbose=None):
    """Writes a SavedModel whose default endpoint serves bits/dim.

    The SavedModel needs only TensorFlow: `tf.saved_model.load(filepath)`,
    then

    ```none
    loaded.serve(images [N, H, W, C] float)            -> bits_per_dim [N]
    loaded.serve(images, labels [N] int32)             (class-conditional)
    loaded.signatures['serving_default'](images=...)   -> {'output_0': ...}
    ```

    `images` are integer pixel values in `[0, 2**num_bits)` (in the Glow's
    float dtype), dequantized with the fixed noise `evaluate` uses, so a
    batch gets the per-image bits/dim `evaluate` averages. The data's value
    rules are checked at serving time as in `fit`. For more endpoints
    (`log_prob`, `sample`, `encode`, `decode`) use
    `tfp_glow.export_saved_model`.

    Args:
      filepath: Python `str` or path, the directory to write.
      format: only `'tf_saved_model'`. Default value: `'tf_saved_model'`.
      verbose: Python `bool` or `None`: print the endpoints (Keras 3 only).
        Default value: `None`.

    Raises:
      ValueError: for another `format`, or if the Glow was never initialised.
    """
    _validation.one_of('format', format, ('tf_saved_model',))
    if not self.glow.is_initialized:
      raise ValueError('The Glow has not been initialised: run '
                       '`model.initialize(images)` (or `fit`) before '
                       '`export`.')
    specs = [tf.TensorSpec([None, *self.glow.image_shape], self.glow.dtype,
                           name='images')]
    if self.glow.num_classes:
      specs.append(tf.TensorSpec([None], tf.int32, name='labels'))
    archive = keras.export.ExportArchive()
    archive.track(self)
    archive.add_endpoint('serve', self._serve, input_signature=specs)
    if IS_LEGACY:
      archive.write_out(str(filepath))
    else:
      archive.write_out(str(filepath), verbose=bool(verbose))

  def _serve(self, images, labels=None):
    images, labels = self._checked(images, labels, 'GlowModel serve')
    x = self._dequantize(images, (self._noise_seed, _EVAL_NOISE_STEP))
    return self._bits_per_dim(self.glow.log_prob(x, labels=labels))


class _Trackers:
  """The model's `loss` and `bits_per_dim` metrics, hidden from tracking.

  A plain object, so that Keras tracks neither metric as the model's: tf_keras
  gathers the metrics of nested models into the logs of the outer one, where
  a user's model holding a GlowModel would log this `loss` (0, never
  updated) in place of its own. `GlowModel.metrics` returns them.
  """

  def __init__(self):
    self.loss = keras.metrics.Mean(name='loss')
    self.bits_per_dim = keras.metrics.Mean(name='bits_per_dim')


def _check_images(images, image_shape, where):
  """`images` as a `Tensor`, after the static rules of the data path."""
  images = tf.convert_to_tensor(images)
  if not (images.dtype.is_integer or images.dtype.is_floating):
    raise TypeError(
        f'{where}: `images` must be integer pixel values of an int or float '
        f'dtype (uint8 usually); got dtype {images.dtype.name}.')
  try:
    _inputs.check_event_shape('images', images, image_shape, where,
                              batch_rank=1)
  except ValueError as e:
    raise ValueError(f'{e} {_shape_hint(images.shape, image_shape)}') from None
  return images


def _shape_hint(shape, image_shape):
  """How to turn images of `shape` into a batch `[N, *image_shape]`."""
  dims = shape.as_list()
  expected = list(image_shape)

  def same(got, want):
    return len(got) == len(want) and all(
        g is None or g == w for g, w in zip(got, want))

  if same(dims, expected):
    return ('For one image, add the batch axis: images[None]; batch a '
            'dataset of single images: dataset.batch(batch_size).')
  if expected[-1] == 1 and same(dims[1:], expected[:-1]):
    return ('For grey images [N, H, W], add the channel axis: '
            'images[..., None].')
  if len(dims) > 4 and same(dims[-3:], expected):
    return ('Merge the leading axes: tf.reshape(images, '
            f'[-1, {", ".join(map(str, expected))}]).')
  return ('Resize or crop the images to that shape, or build the Glow with '
          'the image_shape of the data.')


def _pixel_assertions(images, num_bits, where):
  """The value rules of `images`, each assertion testing its rule alone.

  `_inputs.pixel_assertions` for integer dtypes. For float images it is
  re-implemented here: there a NaN fails all three of its assertions (NaN is
  not an integer and spoils min and max), and in a graph any one of them may
  raise first. Here integrality and range are tested on the finite values
  only, so a batch gets the message of the rule it breaks; the messages
  also show the number of non-finite values and the range of the others,
  which tells float images in [0, 1] apart.

  Args:
    images: a float or int `Tensor`.
    num_bits: Python `int`.
    where: the method, named in the messages.

  Returns:
    A list of assertion ops (`None`s in eager mode, where they ran already).
  """
  if images.dtype.is_integer:
    return _inputs.pixel_assertions('images', images, num_bits, where)
  values = tf.cast(images, tf.float64)
  finite = tf.math.is_finite(values)
  values = tf.where(finite, values, tf.zeros_like(values))
  low, high = tf.reduce_min(values), tf.reduce_max(values)
  pixel_range = f'[0, {2**num_bits}) (num_bits={num_bits})'
  return [
      tf.debugging.Assert(tf.reduce_all(finite), [
          f'{where}: `images` must be finite; got',
          tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64)),
          'NaN or inf values']),
      tf.debugging.Assert(tf.reduce_all(tf.equal(values, tf.floor(values))), [
          f'{where}: `images` must hold integer pixel values in '
          f'{pixel_range}; got non-integer values from', low, 'to', high,
          '. For float images in [0, 1], pass tf.cast(tf.round(images * '
          f'{2**num_bits - 1}), tf.uint8)']),
      tf.debugging.Assert(
          tf.logical_or(tf.equal(tf.size(values), 0), tf.logical_and(
              low >= 0.0, high < 2.0**num_bits)),
          [f'{where}: `images` must hold pixel values in {pixel_range}; got '
           'min and max', low, high,
           '. Reduce the bit depth of the data or set num_bits']),
  ]


def _after(checks, images, labels):
  """`images` and `labels` (or `None`), computed after the `checks` ran."""
  checks = [c for c in checks if c is not None]  # None once run eagerly.
  if not checks:
    return images, labels
  with tf.control_dependencies(checks):
    return tf.identity(images), (None if labels is None else
                                 tf.identity(labels))


def _with_known_shapes(images, labels, image_shape, where):
  """Asserts at run time the shapes the trace does not know, then sets them.

  A no-op when the static shapes are known (they were checked in Python).
  Needed because `tf.function` (Keras traces with `reduce_retracing=True`)
  relaxes the input shapes of a step traced for several, down to an unknown
  rank, and Python then sees nothing to check.

  The shapes are then set by reshapes that hold for any input (the images
  truncated to whole images), not by `set_shape` or `tf.ensure_shape`:
  Grappler takes a static shape set on a tensor as a fact about its input,
  folds the rank assertion to true, and lets a later op fail on the real
  shape with a message that does not name the data.
  """
  checks = []
  if not (images.shape.rank == 4 and images.shape[1:].is_fully_defined()):
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)
    checks.append(tf.debugging.Assert(
        tf.logical_and(tf.equal(tf.size(shape), 4), tf.reduce_all(
            tf.equal(padded[1:4], list(image_shape)))),
        [f'{where}: `images` must have shape [N, '
         f'{", ".join(map(str, image_shape))}]; got shape', shape,
         '. Add the batch axis (images[None]) or the channel axis '
         '(images[..., None]), or resize the images'], summarize=8))
    flat = tf.reshape(images, [-1])
    size = math.prod(image_shape)
    num = tf.size(flat) // size
    images = tf.reshape(flat[:num * size], [num, *image_shape])
  if labels is not None and labels.shape.rank != 1:
    checks.append(tf.debugging.Assert(
        tf.equal(tf.rank(labels), 1),
        [f'{where}: `labels` must have one class id per example, shape [N]; '
         'got shape', tf.shape(labels)], summarize=8))
    labels = tf.reshape(labels, [-1])
  return _after(checks, images, labels)


def _batch_size_assertion(images, labels, where):
  """Assertion of one label per image (static shapes may not tell)."""
  num_labels = tf.size(labels)
  num_images = tf.shape(images)[0]
  return tf.debugging.Assert(
      tf.equal(num_labels, num_images),
      [f'{where}: `labels` must hold one class id per image, shape [N] with N '
       'the batch size of `images`; got', num_labels, 'labels for',
       num_images, 'images'])


def _glow_config(glow):
  """The constructor arguments of `glow`, as JSON-serialisable values."""
  parameters = glow.parameters
  conditioner_fn = parameters.get('conditioner_fn')
  if conditioner_fn is not None:
    # NotImplementedError, as Keras raises for a model without a config:
    # tf_keras' SavedModel format then saves the model without one.
    raise NotImplementedError(
        'A GlowModel whose Glow has a custom `conditioner_fn` has no config '
        '(a function cannot be written to a `.keras` file); `conditioner_fn` '
        f'must be None to save with `save` or `get_config`; got '
        f'conditioner_fn={conditioner_fn!r}. Save the weights instead '
        '(`save_weights`, `tf.train.Checkpoint`) and rebuild the Glow in '
        'code, or write a SavedModel with `export`.')
  names = [n for n in inspect.signature(Glow).parameters
           if n != 'conditioner_fn']
  return {n: _plain(n, parameters[n]) for n in names if n in parameters}


def _plain(name, value):
  """`value` as JSON-serialisable Python (a dtype as its name)."""
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, tf.dtypes.DType):
    return value.name
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    return float(value)
  if isinstance(value, (tuple, list)):
    return [_plain(name, v) for v in value]
  try:
    return tf.as_dtype(value).name   # numpy dtypes and dtype-like objects.
  except (TypeError, ValueError):
    raise NotImplementedError(
        f'Glow argument `{name}` has no config: {value!r} is not a number, '
        'string, dtype or sequence.') from None
