"""`Glow`: the multi-scale flow as a `tfd.TransformedDistribution`."""

import functools
import inspect
import math
import numbers
from typing import Optional, Sequence, Tuple
import warnings

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow import _composite
from tfp_glow import _context
from tfp_glow import _hardware
from tfp_glow import _inputs
from tfp_glow import _validation
from tfp_glow import bijectors as gb
from tfp_glow import flow
from tfp_glow import nn
from tfp_glow import vocabulary
from tfp_glow.bijectors import _base
from tfp_glow.bijectors import initialize

__all__ = ['Glow']

TensorLike = tf.types.experimental.TensorLike

tfd = tfp.distributions



_KWARGS = ('labels', 'context', 'temperature')


def _route_kwargs(flow_bijector, kwargs):
  """TFP's `kwargs_split_fn`: the bijector keyword arguments of a call.

  `context` goes to every conditional layer (`flow.context_kwargs`), `labels`
  to the top prior, `temperature` to the latent scale.
  """
  _check_kwarg_names(kwargs)
  bijector_kwargs = {}
  if kwargs.get('context') is not None:
    bijector_kwargs = flow.context_kwargs(flow_bijector, kwargs['context'])
  if kwargs.get('labels') is not None:
    bijector_kwargs.setdefault(flow.TOP_PRIOR, {})['labels'] = kwargs['labels']
  if kwargs.get('temperature') is not None:
    bijector_kwargs[flow.TEMPERATURE] = {'temperature': kwargs['temperature']}
  return {}, bijector_kwargs


def _check_kwarg_names(kwargs):
  unknown = set(kwargs) - set(_KWARGS)
  if unknown:
    raise TypeError(f'Unexpected keyword arguments {sorted(unknown)}; Glow '
                    'takes `labels`, `context` and `temperature`.')


class Glow(tfd.TransformedDistribution):
  """Glow (Kingma & Dhariwal, 2018) as a TFP distribution over images.

  A standard normal over the latent, pushed through a `tfb.Chain` of Glow's
  layers (see `tfp_glow.flow.build_flow`): `sample` runs the chain forward
  (z -> x), `log_prob` runs the paper's f = `inverse` (x -> z) and adds the
  log-determinants, both through TFP's `TransformedDistribution`:

  ```none
  log p(x) = log N(f(x); 0, I) + sum_i log|det df_i / df_(i-1)|
  ```

  `x` lives in dequantized pixel space `[0, 2**num_bits)`, shape
  `[..., H, W, C]`. The scaling to the flow's working range is part of the
  chain, so `-log_prob(x) / (H * W * C * ln 2)` is bits per dimension, the
  number the paper reports.

  Class-conditional models (`num_classes=K`) take `labels` (int class ids of
  the batch shape) in `log_prob(x, labels=y)`, `sample(n, labels=y)`,
  `encode`, `decode` and `bits_per_dim`; TFP routes them to the top prior as
  bijector keyword arguments. `sample(n, temperature=T)` draws every latent
  from N(0, T^2), the paper's temperature. Inside a `tf.function` on a CPU
  under `tfp_glow.configure_cpu_threads()`, `sample` maps a known number of
  samples as one independent chain per core, which the cores run at once
  (the same latents and images as one chain).

  Conditional models (`context_shape=S`) are densities p(x | context) for a
  context tensor of shape `[N, *S]`: a vector `S = (D,)` (an embedding, a
  user encoder's output) or an image `S = (h, w, c)` (a low-resolution
  image, a feature map). Every coupling network, every split prior and the
  top prior read it, each at its level's resolution: an image context is
  resized (antialiased bilinear) to the level's height and width, as SRFlow
  injects per-level features; a vector is the same at every level, entering
  each network through a learned projection (see `nn.GlowConditioner`). The
  context enters the networks only, so for a fixed context every layer is
  exactly invertible and every log-det exact, and the model starts as the
  unconditional one (identity couplings, N(0, 1) priors). Pass it as
  `log_prob(x, context=c)`, `sample(n, context=c)`, `encode`, `decode`,
  `bits_per_dim` and `initialize`, alone or with `labels`; a context of one
  example (batch 1) serves a whole batch.

  Args:
    image_shape: `(H, W, C)`; H and W divisible by `2**num_levels`.
    num_levels: Python `int`, the number of levels L (scales).
    num_steps: Python `int`, flow steps K per level.
    hidden_channels: Python `int`, width of the coupling networks.
    coupling: `'affine'`, `'additive'` or `'spline'` (rational-quadratic
      spline, `bijectors.SplineCoupling`). Default value: `'affine'`.
    permutation: `'lu'` (LU-decomposed 1x1 conv), `'conv1x1'` (plain 1x1
      conv), `'shuffle'` or `'reverse'`. Default value: `'lu'`.
    learn_top: Python `bool`, learn the top prior's mean and scale.
      Default value: `True`.
    num_classes: Python `int` or `None`, for a class-conditional top prior.
      Default value: `None`.
    context_shape: `None`, `(D,)` or `(h, w, c)`: the shape of one context
      of a conditional Glow p(x | context). Default value: `None`.
    num_bits: Python `int` in [1, 16], bits per pixel value.
      Default value: `8`.
    conditioner_fn: coupling-network factory (see `tfp_glow.nn`).
      Default value: `nn.glow_conditioner(hidden_channels)`.
    dtype: `tf.float32` or `tf.float64`, of every variable and of
      `log_prob`. Default value: `tf.float32`.
    compute_dtype: `None`, `tf.bfloat16`, `tf.float16` or `'auto'`: mixed
      precision, the default coupling networks' convolutions compute in this
      dtype while variables, log-dets and `log_prob` stay in `dtype`.
      `'auto'` is bfloat16 where bf16 units compute faster than float32 (a
      CPU with AMX, an AMD CPU with AVX512-BF16, a GPU of compute capability
      >= 8.0) and `dtype` elsewhere, decided when the Glow is built and
      logged once (logger `'tfp_glow'`); the `compute_dtype` property tells
      the choice, `parameters` and `get_config()` keep `'auto'`. Default
      value: `None`.
    seed: Python `int` or `None`, seeds every initial value. Default value:
      `None`.
    recompute_gradients: Python `bool`, gradient checkpointing: each flow
      step's activations are recomputed in the backward pass instead of kept,
      which cuts training memory for one more forward pass. Same values and
      gradients. Default value: `False`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'Glow'`.

  Raises:
    TypeError, ValueError: for any bad argument; the message names it.

  #### Examples

  >>> glow = Glow((8, 8, 1), num_levels=2, num_steps=2, hidden_channels=8,
  ...             seed=0)
  >>> x = tf.random.uniform([4, 8, 8, 1], 0.0, 256.0, seed=1)
  >>> glow.initialize(x)
  >>> glow.log_prob(x).shape
  TensorShape([4])
  >>> glow.sample(2, temperature=0.7, seed=2).shape
  TensorShape([2, 8, 8, 1])
  >>> glow.latent_shape
  TensorShape([2, 2, 16])

  A conditional Glow, here on a 4x4 image context:

  >>> cond = Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=8,
  ...             context_shape=(4, 4, 1), seed=0)
  >>> c = tf.random.uniform([4, 4, 4, 1], seed=3)
  >>> cond.initialize(x, context=c)
  >>> cond.log_prob(x, context=c).shape
  TensorShape([4])
  >>> cond.sample(3, context=c[:1], seed=2).shape  # One context for all.
  TensorShape([3, 8, 8, 1])

  #### References

  [1]: Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with
       Invertible 1x1 Convolutions. NeurIPS 2018.
       https://arxiv.org/abs/1807.03039
  """

  def __init__(self, image_shape: Sequence[int], *, num_levels: int,
               num_steps: int, hidden_channels: int, coupling: str = 'affine',
               permutation: str = 'lu', learn_top: bool = True,
               num_classes: Optional[int] = None,
               context_shape: Optional[Sequence[int]] = None,
               num_bits: int = 8,
               conditioner_fn: Optional[nn.ConditionerFn] = None,
               dtype: tf.DType = tf.float32,
               compute_dtype: Optional[tf.DType] = None,
               seed: Optional[int] = None,
               recompute_gradients: bool = False, validate_args: bool = False,
               name: str = 'Glow'):
    parameters = dict(locals())
    image_shape = _check_image_shape(image_shape, num_levels)
    _validation.positive_int('num_steps', num_steps)
    _validation.positive_int('hidden_channels', hidden_channels)
    vocabulary.check_coupling(coupling)
    vocabulary.check_permutation(permutation)
    if num_classes is not None:
      _validation.positive_int('num_classes', num_classes, minimum=2)
    context_shape = _context.check_context_shape(context_shape)
    vocabulary.check_num_bits(num_bits)
    dtype = _validation.float_dtype(dtype)
    self._compute_dtype = (_hardware.resolve_compute_dtype(compute_dtype)
                           or dtype)
    if not isinstance(recompute_gradients, bool):
      raise TypeError('`recompute_gradients` must be a bool; got '
                      f'{recompute_gradients!r}.')
    self._image_shape = image_shape
    self._num_levels = num_levels
    self._num_bits = num_bits
    self._num_classes = num_classes
    self._context_shape = context_shape
    with tf.name_scope(name) as name:
      bijector = flow.build_flow(
          image_shape, num_levels=num_levels, num_steps=num_steps,
          conditioner_fn=conditioner_fn or nn.glow_conditioner(
              hidden_channels, self._compute_dtype),
          coupling=coupling, permutation=permutation, learn_top=learn_top,
          num_classes=num_classes, num_bits=num_bits, dtype=dtype, seed=seed,
          recompute_gradients=recompute_gradients,
          context_shape=context_shape)
      latent_shape = bijector.inverse_event_shape(image_shape)
      base = tfd.Sample(
          tfd.Normal(tf.zeros([], dtype), tf.ones([], dtype)),
          sample_shape=latent_shape)
      super().__init__(
          distribution=base, bijector=bijector,
          kwargs_split_fn=functools.partial(_route_kwargs, bijector),
          validate_args=validate_args, parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype=None, num_classes=None):
    # Glow's parameters are its layers' variables, not batched tensors.
    return dict()

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    """`(H, W, C)` of the images."""
    return self._image_shape

  @property
  def compute_dtype(self) -> tf.DType:
    """The dtype the default coupling networks compute in (`'auto'`
    resolved; `dtype` without mixed precision)."""
    return self._compute_dtype

  @property
  def num_levels(self) -> int:
    return self._num_levels

  @property
  def top_channels(self) -> int:
    """Channels of the top level's latent, `C * 2**(L + 1)` (the rest of the
    latent's channels are noise factored out by the splits)."""
    return self._image_shape[-1] * 2**(self._num_levels + 1)

  @property
  def latent_shape(self) -> tf.TensorShape:
    """Shape of one latent, `[H / 2**L, W / 2**L, C * 4**L]`."""
    return self.distribution.event_shape

  @property
  def num_bits(self) -> int:
    return self._num_bits

  @property
  def num_classes(self) -> Optional[int]:
    return self._num_classes

  @property
  def context_shape(self) -> Optional[Tuple[int, ...]]:
    """The shape of one context, `(D,)` or `(h, w, c)`, or `None`."""
    return self._context_shape

  @property
  def num_dims(self) -> int:
    """D = H * W * C, the dimensions bits/dim divides by."""
    return math.prod(self._image_shape)

  def get_config(self) -> dict:
    """The constructor arguments, as JSON-serialisable values.

    `Glow.from_config(glow.get_config())` builds the same model with fresh
    weights (restore them from a checkpoint); run directories' config.json
    and `.keras` files hold it.

    Raises:
      NotImplementedError: if the Glow has a custom `conditioner_fn` (a
        function has no config), as Keras raises for a model without one.
    """
    parameters = self.parameters
    conditioner_fn = parameters.get('conditioner_fn')
    if conditioner_fn is not None:
      raise NotImplementedError(
          'A Glow with a custom `conditioner_fn` has no config (a function '
          'cannot be written to a file); `conditioner_fn` must be None to save '
          f'a config; got conditioner_fn={conditioner_fn!r}. Save the weights '
          'instead (`save_weights`, `tf.train.Checkpoint`) and rebuild the '
          'Glow in code, or write a SavedModel (`tfp_glow.export_saved_model`).')
    names = [n for n in inspect.signature(Glow).parameters
             if n != 'conditioner_fn']
    return {n: _plain(n, parameters[n]) for n in names if n in parameters}

  @classmethod
  def from_config(cls, config: dict) -> 'Glow':
    """The Glow of a `get_config()` (fresh weights)."""
    config = dict(config)
    if config.get('context_shape') is not None:
      config['context_shape'] = tuple(config['context_shape'])
    return cls(tuple(config.pop('image_shape')), **config)

  def initialize(self, x: TensorLike,
                 labels: Optional[TensorLike] = None,
                 context: Optional[TensorLike] = None) -> None:
    """Runs every ActNorm's data-dependent init on the batch `x`, once.

    Args:
      x: dequantized images `[N, H, W, C]` in `[0, 2**num_bits)`.
      labels: class ids `[N]`, required iff `num_classes` is set.
      context: `[N, *context_shape]` (or one for all), required iff
        `context_shape` is set.

    Raises:
      ValueError, TypeError: if the shapes of `x` or `labels`, or the values
        of `labels` known in Python, break a rule above; with
        `validate_args=True` also `tf.errors.InvalidArgumentError` for values
        of `x` out of range or not finite.
    """
    where = 'Glow.initialize'
    x = self._checked(x, 'x', self._image_shape, where, batch_rank=1)
    labels = self._checked_labels(labels, x.shape[:1], where)
    context = self._checked_context(context, x, where)
    x = self._with_value_checks(x, where)
    _, bijector_kwargs = self._split_kwargs(labels=labels, context=context)
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      initialize.data_init(self.bijector, x, **bijector_kwargs)
    _warn_once(caught, where)

  @property
  def is_initialized(self) -> bool:
    """True once every data-dependent init has run (a Python bool).

    Reads the `initialized` flag of every layer that has one (the flow's
    ActNorms and the ActNorms inside the coupling networks).
    """
    flags = [m.initialized for m in self.submodules
             if isinstance(getattr(m, 'initialized', None), tf.Variable)]
    return all(bool(v.numpy()) for v in flags)

  def encode_top(self, x: TensorLike,
                 context: Optional[TensorLike] = None) -> tf.Tensor:
    """The top level's latent before the top prior, `[..., *top_shape]`.

    `top_shape = [H / 2**L, W / 2**L, top_channels]`: the active channels
    that reach the learned (or class-conditional) prior; openai/glow's
    class-conditional classifier reads their spatial mean. In a traced
    function, after `log_prob` of the same `x`, TFP's cache returns the
    outputs already computed.
    """
    where = 'Glow.encode_top'
    x = self._checked(x, 'x', self._image_shape, where)
    context = self._checked_context(context, x, where)
    top = (flow.TOP_PRIOR, flow.TEMPERATURE)
    encoder = gb.Chain([b for b in self.bijector.bijectors
                        if b.name not in top])
    kwargs = {} if context is None else flow.context_kwargs(encoder, context)
    return encoder.inverse(x, **kwargs)[..., :self.top_channels]

  def encode(self, x: TensorLike, labels: Optional[TensorLike] = None,
             context: Optional[TensorLike] = None) -> tf.Tensor:
    """The latent z = f(x), shape `[..., *latent_shape]`."""
    where = 'Glow.encode'
    x = self._checked(x, 'x', self._image_shape, where)
    labels = self._checked_labels(labels, x.shape[:-3], where)
    context = self._checked_context(context, x, where)
    x = self._with_value_checks(x, where)
    _, bijector_kwargs = self._split_kwargs(labels=labels, context=context)
    return self.bijector.inverse(x, **bijector_kwargs)

  def decode(self, z: TensorLike, labels: Optional[TensorLike] = None,
             temperature: Optional[TensorLike] = None,
             context: Optional[TensorLike] = None) -> tf.Tensor:
    """The image x = f^-1(z) in pixel space (`temperature` scales z first)."""
    where = 'Glow.decode'
    z = self._checked(z, 'z', self.latent_shape, where)
    labels = self._checked_labels(labels, z.shape[:-3], where)
    context = self._checked_context(context, z, where)
    _check_temperature(temperature, where)
    _, bijector_kwargs = self._split_kwargs(
        labels=labels, context=context, temperature=temperature)
    return self.bijector.forward(z, **bijector_kwargs)

  def bits_per_dim(self, x: TensorLike, labels: Optional[TensorLike] = None,
                   seed=None, context: Optional[TensorLike] = None,
                   num_samples: int = 1) -> tf.Tensor:
    """Bits per dimension of integer-valued images, dequantized with U[0, 1).

    With `num_samples=K > 1`, the importance-weighted bound (Burda et al.
    2016, as Flow++ and RQ-NSF evaluate) with the uniform noise as proposal:

    ```none
    -log((1/K) sum_k p(x + u_k)) / (D ln 2),   u_k ~ U[0, 1)^D
    ```

    a log-mean-exp computed stably; it bounds the discrete model's
    -log P(x) / (D ln 2) from above, tighter as K grows, and never exceeds
    the mean of the K single-sample values (Jensen). `K = 1` is the
    single-sample value. The K draws run as one batch of `K * N` images
    (K times the memory of one).

    Args:
      x: integer pixel values `[..., H, W, C]` in `[0, 2**num_bits)`, of any
        int or float dtype.
      labels: class ids, required iff `num_classes` is set.
      seed: seed of the dequantization noise, a TFP seed: a pair of ints or
        a shape-[2] int tensor (stateless: the same seed gives the same
        noise), or an int or `None` (stateful, as everywhere in TFP). The
        same stateless seed draws other noise inside an XLA-compiled function
        (`jit_compile=True`) than outside it.
      context: `[..., *context_shape]`, required iff `context_shape` is set.
      num_samples: Python `int` K >= 1, dequantization draws per image.
        The noise is `tf.random.stateless_uniform([K, *x.shape], seed)`
        (without the leading K for K = 1), draw k its k-th slice. Default
        value: `1`.

    Returns:
      `-log p(x + u) / (D ln 2)` per image, with `u ~ U[0, 1)^D`; for K > 1
      the importance-weighted bound above.
    """
    where = 'Glow.bits_per_dim'
    num_samples = _validation.positive_int('num_samples', num_samples)
    x = tf.convert_to_tensor(x)
    _inputs.check_event_shape('x', x, self._image_shape, where)
    if self.validate_args:
      with tf.control_dependencies(_inputs.pixel_assertions(
          'x', x, self._num_bits, where)):
        x = tf.identity(x)
    x = tf.cast(x, self.dtype)
    labels = self._checked_labels(labels, x.shape[:-3], where)
    context = self._checked_context(context, x, where)
    if num_samples > 1:
      x, labels, context = _repeated(num_samples, x, labels, context)
    u = tf.random.stateless_uniform(
        tf.shape(x), seed=tfp.random.sanitize_seed(seed), dtype=self.dtype)
    log_prob = self.log_prob(x + u, labels=labels, context=context)
    if num_samples > 1:
      log_prob = tf.reduce_logsumexp(log_prob, axis=0) - math.log(num_samples)
    return -log_prob / (self.num_dims * math.log(2.0))

  # TFP's hooks.

  def _log_prob(self, x, **kwargs):
    """log p(x) = log N(f(x)) + ildj(x), in the inverse direction only.

    TFP's own `_log_prob` asks for the forward log-det at z = f(x). In a
    traced graph the cache answers it from the inverse pass; in eager mode,
    where tfp_glow caches nothing, it would run the sampling direction from z,
    twice the work and exp(-log_s) overflowing to NaN on a model whose
    weights moved. Here every mode takes the same single inverse pass.
    """
    where = 'Glow.log_prob'
    _check_kwarg_names(kwargs)
    x = self._checked(x, 'x', self._image_shape, where)
    labels = self._checked_labels(kwargs.get('labels'), x.shape[:-3], where)
    context = self._checked_context(kwargs.get('context'), x, where)
    temperature = kwargs.get('temperature')
    _check_temperature(temperature, where, allow_zero=False)
    x = self._with_value_checks(x, where)
    _, bijector_kwargs = self._split_kwargs(
        labels=labels, context=context, temperature=temperature)
    with _base.single_pass():
      z = self.bijector.inverse(x, **bijector_kwargs)
      ildj = self.bijector.inverse_log_det_jacobian(
          x, event_ndims=3, **bijector_kwargs)
      return self.distribution.log_prob(z) + ildj

  def _call_sample_n(self, sample_shape, seed, **kwargs):
    where = 'Glow.sample'
    _check_kwarg_names(kwargs)
    shape = _check_sample_shape(sample_shape, where)
    if kwargs.get('labels') is not None or self._num_classes:
      kwargs['labels'] = self._checked_labels(
          kwargs.get('labels'), shape, where)
    if kwargs.get('context') is not None or self._context_shape:
      kwargs['context'] = self._checked_context(
          kwargs.get('context'), None, where, batch_shape=shape,
          batch_shape_tensor=tf.reshape(
              tf.cast(sample_shape, tf.int32), [-1]))
    _check_temperature(kwargs.get('temperature'), where)
    sizes = _sample_chunk_sizes(shape, kwargs.get('temperature'))
    if len(sizes) == 1:
      return super()._call_sample_n(sample_shape, seed, **kwargs)
    return self._sample_in_chunks(shape, sizes, seed, kwargs)

  def _sample_in_chunks(self, shape, sizes, seed, kwargs):
    """TFP's sampling as independent chains of `sizes` samples each.

    One base draw, as TFP's own (so the same latents for a seed), mapped to
    images chunk by chunk: each image depends on its latent alone, so the
    images are those of one chain, and in a traced graph under
    `tfp_glow.configure_cpu_threads()` the cores run the chains at once
    (sampling is one long chain of small ops, like a training step).
    """
    n = shape.num_elements()
    z = self.distribution.sample(shape, seed=seed)
    z_chunks = tf.split(tf.reshape(z, [n, *self.latent_shape]), sizes)
    event_shapes = {'labels': [], 'context': self._context_shape}
    per_sample = {  # Checked and broadcast to `shape` by `_call_sample_n`.
        name: tf.split(tf.reshape(kwargs[name], [n, *event_shapes[name]]),
                       sizes)
        for name in event_shapes if kwargs.get(name) is not None}
    images = []
    for i, z_chunk in enumerate(z_chunks):
      chunk_kwargs = {name: chunks[i] for name, chunks in per_sample.items()}
      _, bijector_kwargs = self._split_kwargs(
          temperature=kwargs.get('temperature'), **chunk_kwargs)
      images.append(self.bijector.forward(z_chunk, **bijector_kwargs))
    return tf.reshape(tf.concat(images, 0), [*shape, *self._image_shape])

  def _split_kwargs(self, **kwargs):
    """`_route_kwargs` of the keyword arguments that are not `None`."""
    return _route_kwargs(self.bijector,
                         {k: v for k, v in kwargs.items() if v is not None})

  # Input checks (see `tfp_glow._inputs`).

  def _checked(self, value, name, event_shape, where, batch_rank=None):
    value = tf.convert_to_tensor(value, self.dtype, name=name)
    _inputs.check_event_shape(name, value, event_shape, where, batch_rank)
    if not tf.executing_eagerly():
      # A new tensor of this graph: an input captured by two traces must not
      # find the other trace's outputs in TFP's caches.
      value = tf.identity(value)
    return value

  def _checked_labels(self, labels, batch_shape, where):
    labels = _inputs.check_labels(labels, self._num_classes, batch_shape,
                                  where)
    if labels is not None and self.validate_args:
      with tf.control_dependencies(_inputs.label_assertions(
          labels, self._num_classes, where)):
        labels = tf.identity(labels)
    return labels

  def _checked_context(self, context, x, where, batch_shape=None,
                       batch_shape_tensor=None):
    """The context for data `x` (or of `batch_shape`), checked and broadcast."""
    if x is not None:
      batch_shape = x.shape[:-3]
      batch_shape_tensor = tf.shape(x)[:-3]
    context = _context.check_context(
        context, self._context_shape, batch_shape, self.dtype, where,
        batch_shape_tensor)
    if context is None:
      return None
    if self.validate_args:
      with tf.control_dependencies(_context.context_assertions(context,
                                                               where)):
        context = tf.identity(context)
    elif not tf.executing_eagerly():
      context = tf.identity(context)   # As for `x` in `_checked`.
    return context

  def _with_value_checks(self, x, where):
    """`x`, asserted finite and in range if `validate_args`."""
    if not self.validate_args:
      return x
    with tf.control_dependencies(_inputs.dequantized_assertions(
        'x', x, self._num_bits, where)):
      return tf.identity(x)


_composite.make_variable_composite(Glow)


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


def _repeated(k, *tensors):
  """Each tensor (or `None`) with a new leading axis of size `k`."""
  return [None if t is None else tf.broadcast_to(
      t, tf.concat([[k], tf.shape(t)], 0)) for t in tensors]


def _warn_once(caught, where):
  """Re-issues the init's warnings: one for all constant-channel layers."""
  constant = [w for w in caught if 'constant on the init batch' in str(
      w.message)]
  for w in caught:
    if w not in constant:
      warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
  if constant:
    warnings.warn(
        f'{where}: {len(constant)} ActNorm layers saw constant channels on the '
        f'init batch and keep unit scale there; the first: {constant[0].message}',
        UserWarning, stacklevel=3)


def _check_sample_shape(sample_shape, where):
  """The static `sample_shape` as a list, if known; raises if negative."""
  static = tf.get_static_value(tf.convert_to_tensor(sample_shape, tf.int32)) \
      if tf.is_tensor(sample_shape) else sample_shape
  if static is None:
    return tf.TensorShape(None)
  try:
    dims = [int(d) for d in np.reshape(np.asarray(static), [-1])]
  except (TypeError, ValueError) as e:
    raise TypeError(f'{where}: `sample_shape` must be an int or a list of '
                    f'ints; got {sample_shape!r}.') from e
  if any(d < 0 for d in dims):
    raise ValueError(f'{where}: `sample_shape` must be >= 0 (a number of '
                     f'samples); got sample_shape={sample_shape!r}.')
  return tf.TensorShape(dims)


def _sample_chunk_sizes(shape, temperature):
  """How many samples each independent chain of `Glow.sample` maps.

  One chain per core that runs ops (`_hardware.auto_batch_chunks()`, more
  than 1 only under `configure_cpu_threads()` on a CPU), in a traced graph
  only (eager ops run one by one: chains would only add ops), and one chain
  when the number of samples is unknown or a non-scalar temperature would
  have to be split with them.
  """
  if tf.executing_eagerly() or not shape.is_fully_defined():
    return [None]
  if temperature is not None and (
      tf.convert_to_tensor(temperature).shape.rank != 0):
    return [None]
  return _hardware.chunk_sizes(shape.num_elements(),
                               _hardware.auto_batch_chunks())


def _check_temperature(temperature, where, allow_zero=True):
  """Raises ValueError if `temperature` is known and negative (or zero)."""
  if temperature is None:
    return
  static = tf.get_static_value(temperature) if tf.is_tensor(
      temperature) else temperature
  if static is None:
    return
  value = np.asarray(static, np.float64)
  bad = ~np.isfinite(value) | (value < 0) | ((value == 0) & (not allow_zero))
  if np.any(bad):
    rule = '>= 0' if allow_zero else '> 0'
    raise ValueError(f'{where}: `temperature` must be finite and {rule}; got '
                     f'temperature={temperature!r}.')


def _check_image_shape(image_shape, num_levels):
  image_shape = _validation.image_shape(image_shape)
  num_levels = _validation.positive_int('num_levels', num_levels)
  scale = 2**num_levels
  if image_shape[0] % scale or image_shape[1] % scale:
    raise ValueError(
        '`image_shape` height and width must be divisible by 2**num_levels = '
        f'{scale}; got image_shape={image_shape} with num_levels={num_levels}.')
  return image_shape
