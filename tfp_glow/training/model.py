"""`GlowModel`: trains a `tfp_glow.Glow` with Keras `compile` and `fit`.

The same code runs under Keras 3 (`import keras`) and under tf_keras
(`TF_USE_LEGACY_KERAS=1`); see `tfp_glow.training._keras`.
"""

import math
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, Union

import tensorflow as tf

from tfp_glow import _hardware
from tfp_glow import _validation
from tfp_glow import vocabulary
from tfp_glow.dequantizer import VariationalDequantizer
from tfp_glow.glow import Glow
from tfp_glow.training import _distribute
from tfp_glow.training import batches
from tfp_glow.training import chunks
from tfp_glow.training import context as context_lib
from tfp_glow.training import data_checks
from tfp_glow.training import dequantization as dequantization_lib
from tfp_glow.training import guard
from tfp_glow.training import noise
from tfp_glow.training import saving
from tfp_glow.training._keras import IS_LEGACY
from tfp_glow.training._keras import GlowModelMixin
from tfp_glow.training._keras import as_model_weights
from tfp_glow.training._keras import keras
from tfp_glow.training._keras import optimizer_is_built
from tfp_glow.training._keras import register_serializable
from tfp_glow.training.optimizers import LinearWarmup
from tfp_glow.training.optimizers import default_optimizer

__all__ = ['GlowModel', 'LinearWarmup', 'default_optimizer']

_INIT_NOISE_STEP = -1   # Second seed of the noise of the data-dependent init.
_EVAL_NOISE_STEP = -2   # Second seed of the noise of `evaluate`.

TensorLike = tf.types.experimental.TensorLike
# One batch of the data: `images`, `(images,)`, `(images, labels)` or a dict
# `{'images': ..., 'labels': ..., 'context': ...}` (see `batches`).
Batch = Union[tf.Tensor, Sequence[tf.Tensor], Mapping[str, tf.Tensor]]


@register_serializable
class GlowModel(GlowModelMixin, saving.SavingMixin, keras.Model):
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
  `[0, 2**num_bits)` (uint8 or any int or float dtype holding integers),
  `(images, labels)` with int class ids `[N]`, or dicts

  ```none
  {'images': images}                             any Glow
  {'images': ..., 'labels': ...}                 class-conditional Glow
  {'images': ..., 'context': ...}                conditional Glow (context_shape)
  {'images': ..., 'labels': ..., 'context': ...} both
  ```

  (a dict of arrays for `fit(x=...)`; other keys are refused). Labels are
  used only by a class-conditional Glow (`num_classes` set), which requires
  them. A conditional Glow requires a `context` per image, so dicts (tuples
  cannot carry it): the raw context, which the `context_encoder` maps to the
  Glow's context `[N, *glow.context_shape]` in every step (training with
  `training=True`, `evaluate`, the init, serving); without an encoder the
  raw context is the Glow's context, of that shape. `evaluate` then reports
  the bits/dim of p(images | context). The
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
    context: given iff the Glow is conditional; one per image, [N, ...];
      without encoder: int or float dtype, [N, *glow.context_shape]
    encoder output: [N, *glow.context_shape]
    dict keys: 'images', 'labels', 'context'
  values, as assertions the step depends on: tf.errors.InvalidArgumentError
    images: finite; integer values; in [0, 2**num_bits)
    labels: in [0, num_classes); one per image
    context: finite (float dtypes); one per image
  ```

  Each message names `images`, `labels` or `context`, states the rule,
  shows what was given and says how to fix it (float images in [0, 1]:
  `tf.cast(tf.round(images * 255), tf.uint8)`). A failing batch raises
  before anything is computed from it, so no update is applied (an
  encoder's output shape is checked when the step is traced, before it
  runs). Labels whose values Python
  knows (arrays given to `initialize`) are checked in Python: `ValueError`.
  Once `fit` traced its step for data of several shapes, `tf.function`
  relaxes the shapes the step is traced for; shapes it no longer knows are
  then asserted at run time (`InvalidArgumentError`, same message). The
  value checks cost about 1% of a training step (a 28x28x1, 2 x 4 steps,
  width 64 Glow, batch 16, on CPU). `call` (dequantized `x`) is not checked.

  **Data-dependent init.** `fit` runs the ActNorm init automatically, once:
  if `glow.is_initialized` is False it calls `initialize` on the first
  `init_batch_size` images (and labels, and contexts) of the training data;
  a `context_encoder` not built yet is built on that batch. Under a
  `tf.distribute` strategy every replica, of every worker, gets the first
  replica's values. A restored model is never re-initialised.

  **Non-finite steps.** A step whose loss or a gradient is NaN or inf
  applies no update; the `NonFiniteGuard` that `fit` adds stops training
  with a message naming the loss or the variable.

  **Dequantization.** With `dequantization='variational'` the noise is
  learned (Flow++): `u ~ q(u | x)`, a `VariationalDequantizer` trained with
  the Glow, and the loss, the logged `bits_per_dim`, `evaluate` and the
  SavedModel's bits/dim are the variational bound
  `-(log p(x + u) - log q(u | x)) / (D ln 2)` (an upper bound on the
  discrete model's bits/dim, as the uniform one is). `bits_per_dim(images,
  num_samples=K)` gives the K-sample importance-weighted bound, with the
  model's noise (uniform, or q) as proposal. `glow.log_prob` keeps its
  meaning: the density of dequantized images. q's variables are the
  model's (checkpoints, `.keras` files).

  **Class-conditional Glow.** With `glow.num_classes` set, as in the paper a
  linear classifier on the spatial mean of the top latent adds
  `weight_y * bits_y`, its cross-entropy in bits (the top latent of the
  image given its context, for a Glow with a context too).

  **Precision.** The model computes in the Glow's dtypes, whatever the Keras
  dtype policy: mixed precision is `Glow(..., compute_dtype=tf.bfloat16)`
  (variables, log-dets and the loss stay float32). Under a mixed Keras
  policy, a Glow without `compute_dtype` warns.

  **Variables.** Every variable of `glow` and of the `context_encoder` is a
  variable of the model (the encoder's trainable ones are trained with the
  Glow), so
  `tf.train.Checkpoint(model=model, optimizer=model.optimizer)`,
  `save_weights`/`load_weights`, `ModelCheckpoint` and `BackupAndRestore`
  save and restore them, including the ActNorm `initialized` flags. `compile`
  builds the optimizer, so a `load_weights` after `compile` also restores its
  state (moments and step). A user's model holding a `GlowModel` as a layer
  has the Glow's variables among its own (trainable, saved, summarised), and
  may add Keras regularisers and `add_loss` terms beside it.

  **Saving.** `model.save('glow.keras')` writes the config (`get_config`:
  the Glow's constructor arguments, the `context_encoder`'s Keras
  serialization, `init_batch_size`, `noise_seed`, `weight_y`), the weights
  (the encoder's, and the ActNorm `initialized` flags, included) and the
  optimizer's state; `keras.models.load_model('glow.keras')` rebuilds the
  model, compiled and initialised (after `import tfp_glow`, which registers
  `tfp_glow>GlowModel`). A Glow with a custom `conditioner_fn` has no
  config: save its weights instead. `model.export(path)` writes a
  SavedModel that needs only TensorFlow; its default endpoint
  `serve(images)` (`serve(images, context)` for a conditional Glow, the raw
  context going through the exported encoder) returns the bits/dim of
  integer images (see `export`).
  Keras 3 and tf_keras support all of this alike. Not supported:
  whole-model `.h5` files, in either Keras, and tf_keras' legacy SavedModel
  format (`model.save(dir)` without `.keras`; a subclassed model whose
  `call` was never traced): use `.keras` files, `.weights.h5` files or
  `export`.

  **CPU threads.** On a CPU, call `tfp_glow.configure_cpu_threads()` before
  TensorFlow runs its first op: each op then runs on one thread, one op per
  core at once, and `fit` and `evaluate` split each batch into one
  independent chunk per core (`batch_chunks='auto'`), so the flow's long
  chain of small ops runs on every core (`tfp-glow` does this). The loss is
  the chunks' size-weighted mean, the batch's mean up to rounding. Only a
  batch whose size the traced step knows is split (a dataset batched with
  `drop_remainder=True`); others run as one chunk.

  **XLA.** `compile(jit_compile=True)` compiles the loss and its gradients
  with XLA, not the whole step (XLA drops the assertions of the data checks);
  see `compile`.

  Args:
    glow: a `tfp_glow.Glow`, built inside the strategy scope for distributed
      training.
    context_encoder: `None`, or a Keras layer or model (of the active Keras:
      Keras 3, or tf_keras under `TF_USE_LEGACY_KERAS=1`) of a conditional
      Glow, mapping the raw context of the data `[N, ...]` to the Glow's
      context `[N, *glow.context_shape]`, trained jointly with the Glow.
      Build it (a `keras.Input`, or `build`) to restore weights into a new
      model; else `initialize` or `fit` builds it. A custom class must be
      registered (`keras.saving.register_keras_serializable`) for `.keras`
      files. Default value: `None`.
    init_batch_size: Python `int` >= 1, images used by the automatic
      data-dependent init. Default value: `256`.
    noise_seed: Python `int`, seed of the dequantization noise (training,
      evaluation and init). Default value: `0`.
    weight_y: Python `float` >= 0, weight of the classification loss of a
      class-conditional Glow; ignored otherwise. Default value: `0.01`.
    dequantization: `'uniform'` (u ~ U[0, 1), the paper's) or
      `'variational'` (u ~ q(u | x), Flow++'s, see **Dequantization**).
      Default value: `'uniform'`.
    dequantizer: a `tfp_glow.dequantizer.VariationalDequantizer` for
      `'variational'`, or `None` for the default one (4 steps, width 32,
      seeded by `noise_seed`). Default value: `None`.
    batch_chunks: `'auto'` or a Python `int` >= 1: each batch of `fit` and
      `evaluate` is computed as this many independent chunks (see **CPU
      threads**). `'auto'`: one per core where
      `tfp_glow.configure_cpu_threads()` set one thread per op, else 1.
      Default value: `'auto'`.
    name: Python `str`. Default value: `'glow_model'`.
    **kwargs: other `keras.Model` arguments, except `dtype` (the Glow's).

  Raises:
    TypeError: if `glow` is not a `tfp_glow.Glow`, or `context_encoder` not
      a Keras layer of the active Keras.
    ValueError: if a `context_encoder` is given for a Glow without
      `context_shape`.
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

  A conditional Glow p(x | context), its context encoded by a Keras layer
  trained with it:

  ```python
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=2,
                       hidden_channels=16, context_shape=(4,), seed=0)
  encoder = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4)])
  model = tfp_glow.GlowModel(glow, context_encoder=encoder)
  model.compile()
  data = tf.data.Dataset.from_tensor_slices(
      {'images': uint8_images, 'context': features}).batch(16)
  model.fit(data, epochs=2)
  model(x, context=features[:4])                  # log p(x | context)
  ```
  """

  def __init__(self, glow: Glow, *,
               context_encoder: Optional[keras.layers.Layer] = None,
               init_batch_size: int = 256, noise_seed: int = 0,
               weight_y: float = 0.01, dequantization: str = 'uniform',
               dequantizer: Optional[VariationalDequantizer] = None,
               batch_chunks: Union[int, str] = 'auto',
               name: str = 'glow_model', **kwargs):
    if not isinstance(glow, Glow):
      raise TypeError('`glow` must be a tfp_glow.Glow; got '
                      f'{type(glow).__name__}.')
    context_encoder = context_lib.check_encoder(context_encoder, glow)
    dtype = kwargs.pop('dtype', None)
    if dtype is not None and getattr(dtype, 'name', dtype) != glow.dtype.name:
      raise ValueError('A GlowModel computes in the dtype of its Glow; '
                       f'`dtype` must be None or {glow.dtype.name!r}; got '
                       f'dtype={dtype!r}.')
    super().__init__(name=name, dtype=glow.dtype.name, **kwargs)
    self._init_batch_size = _validation.positive_int('init_batch_size',
                                                     init_batch_size)
    self._noise_seed = _validation.integer('noise_seed', noise_seed)
    self._weight_y = _validation.nonnegative_float('weight_y', weight_y)
    self._batch_chunks = _check_batch_chunks(batch_chunks)
    self._num_chunks = (_hardware.auto_batch_chunks()
                        if batch_chunks == 'auto' else batch_chunks)
    _warn_if_policy_ignored(glow)
    self._dequantization = vocabulary.check_dequantization(dequantization)
    dequantizer = _dequantizer(glow, dequantization, dequantizer,
                               self._noise_seed)
    self.glow = glow
    self.dequantizer = dequantizer   # A tf.Module, or None.
    # The tf.Variables of the Glow (and of q) as the model's, in a fixed
    # order (see `GlowModelMixin`): trained, saved, restored.
    modules = [glow] + ([dequantizer] if dequantizer is not None else [])
    self._glow_variables = as_model_weights(
        [v for m in modules for v in m.variables])
    self._glow_paths = guard.variable_paths(glow)
    if dequantizer is not None:
      self._glow_paths.update({k: 'dequantizer.' + p for k, p in
                               guard.variable_paths(dequantizer).items()})
    self._classifier = None
    if glow.num_classes:
      self._classifier = keras.layers.Dense(
          glow.num_classes, kernel_initializer='zeros', dtype=glow.dtype.name,
          name='class_logits')
      self._classifier.build((None, glow.top_channels))
    # A tracked layer: its variables are the model's (trained, saved).
    self.context_encoder = context_encoder
    self._seen_context = None   # TensorSpec of the raw context at the init.
    self._trackers = _Trackers()
    self._guard = guard.GuardRecord()
    self._xla = False   # Set by `compile`.
    self.built = True

  @property
  def init_batch_size(self) -> int:
    return self._init_batch_size

  @property
  def noise_seed(self) -> int:
    return self._noise_seed

  @property
  def batch_chunks(self) -> Union[int, str]:
    return self._batch_chunks

  @property
  def num_chunks(self) -> int:
    """Chunks each batch of a step is split into (`batch_chunks` resolved)."""
    return self._num_chunks

  @property
  def weight_y(self) -> float:
    return self._weight_y

  @property
  def dequantization(self) -> str:
    """`'uniform'` or `'variational'`."""
    return self._dequantization

  @property
  def metrics(self) -> List[keras.metrics.Metric]:
    return [self._trackers.loss, self._trackers.bits_per_dim]

  def call(self, x: TensorLike, labels: Optional[TensorLike] = None,
           context: Optional[TensorLike] = None) -> tf.Tensor:
    """Log-density `glow.log_prob(x, labels, context)` of dequantized `x`.

    Not part of the data path: `x` are dequantized pixels (float, in
    `[0, 2**num_bits)`), checked only by a Glow built with
    `validate_args=True`. Integer images go to `fit`, `evaluate` and the
    SavedModel of `export`, which dequantize (and check) them.

    Args:
      x: dequantized images `[N, H, W, C]`.
      labels: class ids `[N]` of a class-conditional Glow. Default value:
        `None`.
      context: the raw context `[N, ...]` of a conditional Glow, which the
        `context_encoder` (if any) maps to the Glow's context (one of batch
        1 serves every image). Default value: `None`.

    Returns:
      `log p(x | context)`, shape `[N]`, in the Glow's dtype.

    Raises:
      ValueError: if the encoder's output is not of the Glow's context
        shape; the Glow's own errors for a missing or misshapen context.
    """
    context = self._glow_context(context, None, 'GlowModel.call')
    return self.glow.log_prob(tf.cast(x, self.glow.dtype), labels=labels,
                              context=context)

  def compile(self,
              optimizer: Union[keras.optimizers.Optimizer, str, None] = None,
              **kwargs) -> None:
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
    self._build_optimizer()

  def _build_optimizer(self):
    """Builds the optimizer's variables, once the model has all of its own.

    Built in `compile` rather than in the first traced step: `fit` then
    traces its step once instead of twice, and `load_weights` restores the
    optimizer's state instead of skipping it. A `context_encoder` not built
    yet has no variables: then the first `initialize` (or `fit`) builds it
    and the optimizer.
    """
    optimizer = getattr(self, 'optimizer', None)
    if optimizer is None or not hasattr(optimizer, 'build') or (
        optimizer_is_built(optimizer)):
      return
    if self.context_encoder is not None and not self.context_encoder.built:
      return
    with self.distribute_strategy.scope():
      optimizer.build(self.trainable_variables)

  def initialize(self, images: TensorLike,
                 labels: Optional[TensorLike] = None,
                 context: Optional[TensorLike] = None) -> None:
    """Runs the Glow's data-dependent init on integer images, once.

    Checks the data as `fit` does (see the class docstring), dequantizes
    `images` with noise seeded by `noise_seed`, encodes the `context` (which
    builds a `context_encoder` not built yet, and records the raw context's
    shape for `export`), calls `glow.initialize` in the cross-replica
    context of the model's strategy, then copies the first replica's values
    to every replica (of every worker). Does nothing to layers already
    initialised.

    Args:
      images: integer pixel values `[N, H, W, C]` in `[0, 2**num_bits)`.
      labels: class ids `[N]`, required iff the Glow is class-conditional
        (ignored otherwise, as in `fit`'s data). Default value: `None`.
      context: the raw context `[N, ...]`, one per image, required iff the
        Glow is conditional (`context_shape` set). Default value: `None`.

    Raises:
      TypeError, ValueError: for data breaking a static rule.
      tf.errors.InvalidArgumentError: for data breaking a value rule.
    """
    self._initialize(batches.Data(images, labels, context),
                     'GlowModel.initialize', 'context=None')

  def _initialize(self, data, where, given):
    images, labels, context = self._checked(data, where, given)
    x = self._dequantize(images, (self._noise_seed, _INIT_NOISE_STEP))
    strategy = self.distribute_strategy
    with strategy.scope():
      context = self._encoded_for_init(context, images, where)
      self.glow.initialize(x, labels=labels, context=context)
      variables = list(self.glow.variables)
      if self.dequantizer is not None:
        self.dequantizer.initialize(images, seed=(self._noise_seed,
                                                  _INIT_NOISE_STEP))
        variables += list(self.dequantizer.variables)
      _distribute.broadcast_from_first_replica(
          strategy, [v for v in variables if v.dtype.is_floating])
    self._build_optimizer()

  def _encoded_for_init(self, context, images, where):
    """The Glow's context of an init batch; records the raw context's spec."""
    if context is None:
      return None
    self._seen_context = context_lib.spec_of(context)
    return self._glow_context(context, images, where, training=False)

  def fit(self, x: Union[tf.data.Dataset, TensorLike, None] = None,
          y: Optional[TensorLike] = None,
          **kwargs) -> keras.callbacks.History:
    """`keras.Model.fit`, after the automatic data-dependent init.

    If the Glow is not initialised yet, runs `initialize` on the first
    `init_batch_size` images (and labels, and contexts) of `x` (and `y`);
    a `context_encoder` not built yet is built on them. Adds a
    `NonFiniteGuard` to `callbacks` (passed by keyword) unless one is there.
    All other arguments are those of `keras.Model.fit`.

    Args:
      x: training data: a batched `tf.data.Dataset` of `images`,
        `(images, labels)` or dicts `{'images': ..., 'labels': ...,
        'context': ...}`, an array of images, or a dict of arrays. Default
        value: `None`.
      y: labels for an array `x`, or `None`. Default value: `None`.
      **kwargs: other arguments of `keras.Model.fit`.

    Returns:
      The Keras `History`.

    Raises:
      TypeError, ValueError: for data breaking a static rule.
      tf.errors.InvalidArgumentError: for data breaking a value rule.
    """
    self._auto_init(x, y)
    self._guard.reset()
    if isinstance(x, tf.data.Dataset):
      kwargs.setdefault('shuffle', False)  # Ignored; Keras 3 warns if True.
    callbacks = list(kwargs.pop('callbacks', None) or [])
    if not any(isinstance(c, guard.NonFiniteGuard)
               for c in callbacks):
      callbacks.insert(0, guard.NonFiniteGuard())
    return super().fit(x, y, callbacks=callbacks, **kwargs)

  def _auto_init(self, x, y):
    """`fit`'s data-dependent init, and the build of a new encoder."""
    unbuilt = self.context_encoder is not None and (
        not self.context_encoder.built)
    if self._is_initialized() and not unbuilt:
      return
    where = 'GlowModel.fit (data-dependent init)'
    data = batches.take_init_batch(x, y, self._init_batch_size, where)
    given = batches.describe(x.element_spec if isinstance(
        x, tf.data.Dataset) else (x if y is None else (x, y)))
    if not self._is_initialized():
      self._initialize(data, where, given)
      return
    # A Glow initialised (restored) elsewhere: only the encoder to build.
    images, _, context = self._checked(data, where, given)
    with self.distribute_strategy.scope():
      self._encoded_for_init(context, images, where)
    self._build_optimizer()

  def _is_initialized(self):
    return self.glow.is_initialized and (
        self.dequantizer is None or self.dequantizer.is_initialized)

  def nonfinite_message(self) -> Optional[str]:
    """What the last `fit` found non-finite (a `str`), or `None`."""
    return guard.message(self._guard.index(), self.trainable_variables,
                          self._glow_paths)

  # Not converted by autograph: this code branches on Python values only (and
  # tf.cond), and converting it and all it calls took 4.4 s of the 12.8 s
  # trace of the offline default's step. Subclasses' steps are converted.
  @tf.autograph.experimental.do_not_convert
  def train_step(self, data: Batch) -> Dict[str, tf.Tensor]:
    images, labels, context = self._unpack(data, 'GlowModel.train_step')
    step = tf.cast(self.optimizer.iterations, tf.int64)
    loss, bpd, grads = self._maybe_xla(self._loss_and_grads)(
        images, labels, context, step)
    variables = self.trainable_variables
    bad = guard.first_nonfinite(loss, grads)
    ok = tf.logical_and(tf.equal(bad, guard.NO_ERROR), self._guard.is_clear())
    guard.apply_if(ok, self.optimizer, grads, variables)
    self._guard.record(bad)
    return self._update_metrics(loss, bpd)

  @tf.autograph.experimental.do_not_convert
  def test_step(self, data: Batch) -> Dict[str, tf.Tensor]:
    images, labels, context = self._unpack(data, 'GlowModel.test_step')
    loss, bpd = self._maybe_xla(self._test_loss)(images, labels, context)
    return self._update_metrics(loss, bpd)

  def _maybe_xla(self, fn):
    """`fn`, compiled by XLA if `compile` asked for it (see `compile`)."""
    return tf.function(fn, jit_compile=True) if self._xla else fn

  def _loss_and_grads(self, images, labels, context, step):
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      # Under the tape: the encoder and q train with the Glow.
      context = self._glow_context(context, images, 'GlowModel.train_step',
                                   training=True)
      loss, bpd = self._bound_loss(images, labels, context,
                                   (self._noise_seed, step))
      # The optimizer sums gradients over replicas.
      scaled_loss = loss / num_replicas
    return loss, bpd, tape.gradient(scaled_loss, self.trainable_variables)

  def _test_loss(self, images, labels, context):
    context = self._glow_context(context, images, 'GlowModel.test_step',
                                 training=False)
    return self._bound_loss(images, labels, context,
                            (self._noise_seed, _EVAL_NOISE_STEP))

  def _bound_loss(self, images, labels, context, seed):
    """`(loss, bits/dim)` of the model's bound at the noise of `seed`.

    Uniform noise: `_loss` of `images + u`. Variational: `_loss` of
    `images + u`, `u ~ q`, plus `log q(u | x) / (D ln 2)` per image. The
    noise is drawn for the whole batch, then the batch's chunks (see
    `batch_chunks`) are computed independently.
    """
    if self.dequantizer is None:
      x = self._dequantize(images, seed, global_batch=True)
      return chunks.over_chunks(self._context_loss, self._num_chunks,
                                x, labels, context)
    normal = dequantization_lib.global_batch_normal(
        self.dequantizer, images, seed, self.glow.dtype)
    return chunks.over_chunks(self._variational_loss, self._num_chunks,
                              normal, images, labels, context)

  def _variational_loss(self, normal, images, labels, context):
    """`_bound_loss` under q, of q's latent noise `normal`."""
    u, log_q = self.dequantizer.from_noise(normal, images)
    x = tf.cast(images, self.glow.dtype) + u
    loss, bpd = self._context_loss(x, labels, context)
    bits_q = log_q / (self.glow.num_dims * math.log(2.0))
    return loss + tf.reduce_mean(bits_q), bpd + bits_q

  def _unpack(self, data, where):
    return self._checked(batches.unpack(data, where), where,
                         batches.describe(data))

  def _checked(self, data, where, given):
    """`(images, labels, raw context)` of the data path, checked.

    `data_checks.check` for the images and labels, `context.check_raw` for
    the context; `given` says what the data held, for the message of a
    missing context.
    """
    images, labels = data_checks.check(self.glow, data.images, data.labels,
                                       where)
    context = context_lib.check_raw(self.glow, data.context, images, where,
                                    self.context_encoder is not None, given)
    return images, labels, context

  def _glow_context(self, context, images, where, training=None):
    """The Glow's context of a raw `context`: the encoder's output, checked.

    `images` (or `None`) give the batch size the output must have.
    """
    if context is None or self.context_encoder is None:
      return context
    encoded = self.context_encoder(context, training=training)
    return context_lib.check_encoded(self.glow, encoded, images, where)

  def _dequantize(self, images, seed, global_batch=False):
    return noise.dequantize(images, seed, self.glow.dtype, global_batch)

  def _bits_per_dim(self, log_prob):
    return -log_prob / (self.glow.num_dims * math.log(2.0))

  def _context_loss(self, x, labels, context):
    """`_loss`, given the context only if there is one.

    Subclasses overriding `_loss(x, labels)` (as tests/test_model.py does)
    keep working for Glows without a context.
    """
    if context is None:
      return self._loss(x, labels)
    return self._loss(x, labels, context=context)

  def _loss(self, x, labels, context=None):
    """Returns (scalar loss, per-example bits/dim); `context`: the Glow's."""
    bpd = self._bits_per_dim(self.glow.log_prob(x, labels=labels,
                                                context=context))
    loss = tf.reduce_mean(bpd)
    if self._classifier is not None and self._weight_y > 0.0:
      logits = self._class_logits(x, context)
      bits_y = tf.nn.sparse_softmax_cross_entropy_with_logits(
          tf.cast(labels, tf.int32), logits) / math.log(2.0)
      loss += self._weight_y * tf.reduce_mean(bits_y)
    return loss, bpd

  def _class_logits(self, x, context=None):
    """Linear classifier on the spatial mean of the top latent (openai/glow).

    `context`: the Glow's context, for a Glow with classes and a context.
    """
    # In a traced step TFP's cache returns what `log_prob` computed for `x`.
    h = self.glow.encode_top(x, context=context)
    return self._classifier(tf.reduce_mean(h, axis=[-3, -2]))

  def _update_metrics(self, loss, bpd):
    self._trackers.loss.update_state(loss)
    self._trackers.bits_per_dim.update_state(bpd)
    return _distribute.step_outputs({m.name: m.result() for m in self.metrics},
                                    keras3=not IS_LEGACY)

  def _serve(self, images, labels=None, context=None):
    where = 'GlowModel serve'
    images, labels, context = self._checked(
        batches.Data(images, labels, context), where, 'context=None')
    context = self._glow_context(context, images, where, training=False)
    return dequantization_lib.bits_per_dim(
        self.glow, self.dequantizer, images,
        (self._noise_seed, _EVAL_NOISE_STEP), labels=labels, context=context)

  def bits_per_dim(self, images: TensorLike,
                   labels: Optional[TensorLike] = None,
                   context: Optional[TensorLike] = None, *,
                   num_samples: int = 1, seed=(0, 0)) -> tf.Tensor:
    """The model's bound on the bits/dim of each integer image, `[N]`.

    `num_samples=1`: the single-sample bound, with the model's noise
    (uniform, or `u ~ q(u | x)` for a variational model: its ELBO in bits).
    `num_samples=K > 1`: the K-sample importance-weighted bound with that
    noise as proposal, `-log((1/K) sum_k p(x + u_k) / q(u_k | x)) / (D ln
    2)`, tighter as K grows (K times the memory of one batch). Checks the
    data as `evaluate` does.

    Args:
      images: integer pixel values `[N, H, W, C]` in `[0, 2**num_bits)`.
      labels: class ids `[N]` of a class-conditional Glow.
      context: the raw context `[N, ...]` of a conditional Glow (through
        the `context_encoder`, if any).
      num_samples: Python `int` K >= 1. Default value: `1`.
      seed: a stateless TFP seed of the noise. Default value: `(0, 0)`.

    Returns:
      float `Tensor` `[N]` in the Glow's dtype.
    """
    where = 'GlowModel.bits_per_dim'
    num_samples = _validation.positive_int('num_samples', num_samples)
    images, labels, context = self._checked(
        batches.Data(images, labels, context), where, 'context=None')
    context = self._glow_context(context, images, where, training=False)
    return dequantization_lib.importance_weighted_bits_per_dim(
        self.glow, self.dequantizer, images, num_samples, seed,
        labels=labels, context=context)

  def context_spec(self) -> Optional[tf.TensorSpec]:
    """The spec `[None, *shape]` of the raw context a SavedModel serves.

    The Glow's context (`[None, *glow.context_shape]`, its dtype) without a
    `context_encoder`; else the encoder's input: a functional encoder's
    `keras.Input`, or the raw context seen by `initialize` (or `fit`'s
    init), or the input shape a built encoder recorded.

    Returns:
      A `tf.TensorSpec` named `'context'`, or `None` for an unconditional
      Glow.

    Raises:
      ValueError: if the raw context's shape cannot be known (the Glow was
        initialised outside this model and the encoder never built).
    """
    if self.glow.context_shape is None:
      return None
    spec = context_lib.raw_spec(self.context_encoder, self._seen_context,
                                self.glow)
    if spec is None:
      raise ValueError(
          'The shape of the raw context (the input of `context_encoder`) is '
          'not known, so a SavedModel cannot declare its `context`: run '
          '`model.initialize(images, context=raw_context)` (or `fit`), which '
          'records it, or build the encoder for it '
          '(`model.context_encoder.build((None, *raw_shape))`, or a '
          'functional encoder starting from a keras.Input); got an encoder '
          f'{type(self.context_encoder).__name__} with built='
          f'{self.context_encoder.built}.')
    return spec


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


def _dequantizer(glow: Glow, dequantization: str,
                 dequantizer: Optional[VariationalDequantizer],
                 seed: int) -> Optional[VariationalDequantizer]:
  """The model's q: `dequantizer`, a default one, or `None` (uniform)."""
  if dequantization == 'uniform':
    if dequantizer is not None:
      raise ValueError(
          "`dequantizer` is for dequantization='variational'; got "
          f"dequantization='uniform' and dequantizer={dequantizer!r}.")
    return None
  if dequantizer is None:
    return VariationalDequantizer(
        glow.image_shape, num_bits=glow.num_bits, dtype=glow.dtype,
        compute_dtype=glow.parameters.get('compute_dtype'), seed=seed)
  if not isinstance(dequantizer, VariationalDequantizer):
    raise TypeError('`dequantizer` must be a tfp_glow.dequantizer.'
                    f'VariationalDequantizer or None; got {dequantizer!r}.')
  if (tuple(dequantizer.image_shape) != tuple(glow.image_shape)
      or dequantizer.get_config()['num_bits'] != glow.num_bits
      or dequantizer.get_config()['dtype'] != glow.dtype.name):
    raise ValueError(
        '`dequantizer` must be built for the Glow\'s image_shape, num_bits '
        f'and dtype ({tuple(glow.image_shape)}, {glow.num_bits}, '
        f'{glow.dtype.name}); got {dequantizer.get_config()}.')
  return dequantizer


def _check_batch_chunks(batch_chunks):
  if batch_chunks == 'auto' or (
      isinstance(batch_chunks, int) and not isinstance(batch_chunks, bool)
      and batch_chunks >= 1):
    return batch_chunks
  raise ValueError("`batch_chunks` must be 'auto' or an int >= 1; got "
                   f'batch_chunks={batch_chunks!r}.')


def _warn_if_policy_ignored(glow: Glow) -> None:
  """Warns if the Keras global dtype policy is mixed but `glow` is not.

  A `GlowModel` computes in its Glow's dtypes, whatever the policy; mixed
  precision is the Glow's `compute_dtype`. No warning for a Glow with a
  `compute_dtype` or its own `conditioner_fn` (which may compute in any
  dtype).
  """
  policy = keras.mixed_precision.global_policy()
  if policy.compute_dtype == policy.variable_dtype:
    return
  if glow.parameters.get('compute_dtype') is not None or (
      glow.parameters.get('conditioner_fn') is not None):
    return
  warnings.warn(
      f'The Keras global dtype policy is {policy.name!r}, but the Glow '
      f'computes in {glow.dtype.name} (compute_dtype=None): a GlowModel '
      "computes in its Glow's dtypes and ignores the Keras policy. For mixed "
      'precision build the Glow with compute_dtype=tf.bfloat16.',
      UserWarning, stacklevel=3)
