"""SavedModel export: serve a trained Glow where only TensorFlow is installed."""

import inspect
from typing import Any, List, Optional

import tensorflow as tf

from tfp_glow import _validation
from tfp_glow.training import context as context_lib

__all__ = ['export_saved_model', 'SIGNATURES']

SIGNATURES = ('log_prob', 'bits_per_dim', 'importance_weighted_bits_per_dim',
              'sample', 'encode', 'decode')

# bits_per_dim dequantizes with this fixed stateless seed, so that serving the
# same images twice gives the same number.
_DEQUANTIZATION_SEED = (0, 0)


def _checked(images, expected_shape, signature, what):
  """Asserts the per-example shape of a served input, naming the signature.

  `None` in `expected_shape` (a raw context's free size) matches any size.
  """
  expected = list(expected_shape)
  message = (f'{signature}: `{what}` must have shape [batch, '
             f'{", ".join("?" if d is None else str(d) for d in expected)}]')
  # The check reads only the runtime shape vector, never `tf.rank`: Grappler
  # may fold a rank to the one the graph declares or implies (through
  # `ensure_shape` below), which a wrong input does not have; with TF 2.21 a
  # [2, 8, 8, 1, 1] batch got past a rank check that way. With rank r and n
  # sizes expected, the shape padded with -1s (no size is negative; n + 2 of
  # them, so that every index below exists for any r) has -1 at index n + 1
  # if and only if r <= n + 1, and the expected sizes at 1..n only if
  # r >= n + 1.
  n = len(expected)
  padded = tf.concat([tf.shape(images), tf.fill([n + 2], -1)], axis=0)
  sizes = padded[1:n + 1]
  if None in expected:
    known = [d is not None for d in expected]
    same = tf.where(known, tf.equal(sizes, [d or 0 for d in expected]),
                    sizes >= 0)   # A free size: any, but there.
  else:
    same = tf.equal(sizes, expected)
  ok = tf.logical_and(tf.equal(padded[n + 1], -1), tf.reduce_all(same))
  check = tf.debugging.Assert(ok, [message + '; got shape', tf.shape(images)],
                              summarize=8)
  with tf.control_dependencies([check]):
    return tf.ensure_shape(tf.identity(images), [None] + expected)


class _Server(tf.Module):
  """Holds the Glow's (and the context encoder's) variables and the serving
  functions.

  `context_spec` is the served raw context (`None`: unconditional), which
  `context_encoder` (a Keras layer, or `None`) maps to the Glow's context.
  """

  def __init__(self, glow, context_spec=None, context_encoder=None,
               dequantizer=None, num_samples=16):
    super().__init__(name='glow_server')
    self.glow = glow
    self.num_samples = num_samples
    # A variational model's q(u | x): bits/dim is then its bound.
    self.dequantizer = dequantizer
    self.image_shape = list(glow.image_shape)
    self.latent_shape = list(glow.latent_shape)
    self.conditional = bool(glow.num_classes)
    self.context_spec = context_spec
    self.context_shape = (None if context_spec is None else
                          context_spec.shape[1:].as_list())
    self.context_encoder = context_encoder

  def _labels(self, labels, batch):
    if not self.conditional:
      return None
    tf.debugging.assert_equal(
        tf.shape(labels)[0], batch,
        message='`labels` must have one class id per example')
    return labels

  def _context(self, context, batch, signature):
    """The Glow's context of a served raw context, `[batch, *context_shape]`.

    One context for all (batch 1) is broadcast to `batch`: the encoder runs
    once.
    """
    if self.context_spec is None:
      return None
    context = _checked(context, self.context_shape, signature, 'context')
    if self.context_encoder is not None:
      context = context_lib.check_encoded(
          self.glow, self.context_encoder(context, training=False), None,
          f'export_saved_model ({signature})')
    num = tf.shape(context)[0]
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(num, batch), tf.equal(num, 1)),
        [f'{signature}: `context` must hold one context per example, or one '
         'for all (batch 1); got', num, 'contexts for', batch, 'examples'])
    with tf.control_dependencies([check]):
      shape = tf.concat([[batch], tf.shape(context)[1:]], axis=0)
      return tf.ensure_shape(tf.broadcast_to(context, shape),
                             [None, *self.glow.context_shape])

  def _log_prob(self, images, labels=None, context=None):
    x = _checked(images, self.image_shape, 'log_prob', 'images')
    batch = tf.shape(x)[0]
    return {'log_prob': self.glow.log_prob(
        x, labels=self._labels(labels, batch),
        context=self._context(context, batch, 'log_prob'))}

  def _bits_per_dim(self, images, labels=None, context=None):
    x = _checked(images, self.image_shape, 'bits_per_dim', 'images')
    batch = tf.shape(x)[0]
    labels = self._labels(labels, batch)
    context = self._context(context, batch, 'bits_per_dim')
    if self.dequantizer is not None:
      return {'bits_per_dim': self.dequantizer.bits_per_dim(
          self.glow, x, seed=_DEQUANTIZATION_SEED, labels=labels,
          context=context)}
    return {'bits_per_dim': self.glow.bits_per_dim(
        x, labels=labels, seed=_DEQUANTIZATION_SEED, context=context)}

  def _importance_weighted_bits_per_dim(self, images, labels=None,
                                        context=None):
    signature = 'importance_weighted_bits_per_dim'
    x = _checked(images, self.image_shape, signature, 'images')
    batch = tf.shape(x)[0]
    labels = self._labels(labels, batch)
    context = self._context(context, batch, signature)
    k = self.num_samples
    if self.dequantizer is not None:
      bits = self.dequantizer.bits_per_dim(
          self.glow, x, num_samples=k, seed=_DEQUANTIZATION_SEED,
          labels=labels, context=context)
    else:
      bits = self.glow.bits_per_dim(x, labels=labels, context=context,
                                    seed=_DEQUANTIZATION_SEED, num_samples=k)
    return {'bits_per_dim': bits, 'num_samples': tf.constant(k, tf.int32)}

  def _sample(self, num, temperature, seed, labels=None, context=None):
    seed_pair = tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])
    images = self.glow.sample(
        num, temperature=temperature, seed=seed_pair,
        labels=self._labels(labels, num),
        context=self._context(context, num, 'sample'))
    return {'images': images}

  def _encode(self, images, labels=None, context=None):
    x = _checked(images, self.image_shape, 'encode', 'images')
    batch = tf.shape(x)[0]
    return {'latents': self.glow.encode(
        x, labels=self._labels(labels, batch),
        context=self._context(context, batch, 'encode'))}

  def _decode(self, latents, labels=None, context=None):
    z = _checked(latents, self.latent_shape, 'decode', 'latents')
    batch = tf.shape(z)[0]
    return {'images': self.glow.decode(
        z, labels=self._labels(labels, batch),
        context=self._context(context, batch, 'decode'))}


def _serve(server, dtype):
  """Attaches one `tf.function` per served method; returns the signatures.

  The signatures declare their shapes (`[None, H, W, C]` images,
  `[None, *latent_shape]` latents), so that `saved_model_cli show` and TF
  Serving's model metadata tell a client what to send. A signature does not
  enforce them: a loaded signature called from Python falls back to its flat
  signature, which checks dtypes only, and feeds whatever arrives to the
  graph, where `_checked` rejects a wrong shape with a message naming the
  signature.

  The same functions are also attributes of the saved object:
  `loaded.log_prob(images)` and `keras.layers.TFSMLayer(path, 'log_prob')`
  accept positional arguments, signatures only keywords. A restored
  attribute does enforce its input signature, before any graph runs, with a
  `TypeError` that names neither the signature nor the argument; so the
  attributes take images and latents of any shape, run `_checked` and call
  the signature's function: one trace, the same graph for both.
  """
  images = tf.TensorSpec([None] + server.image_shape, dtype, name='images')
  latents = tf.TensorSpec([None] + server.latent_shape, dtype, name='latents')
  labels = tf.TensorSpec([None], tf.int32, name='labels')
  num = tf.TensorSpec([], tf.int32, name='num')
  temperature = tf.TensorSpec([], dtype, name='temperature')
  seed = tf.TensorSpec([], tf.int32, name='seed')
  specs = {
      'log_prob': [images], 'bits_per_dim': [images],
      'importance_weighted_bits_per_dim': [images],
      'sample': [num, temperature, seed], 'encode': [images],
      'decode': [latents],
  }
  shaped = {'images': server.image_shape, 'latents': server.latent_shape}
  if server.context_spec is not None:
    shaped['context'] = server.context_shape
  functions = {}
  for name, inputs in specs.items():
    if server.conditional:
      inputs = inputs + [labels]
    if server.context_spec is not None:
      inputs = inputs + [server.context_spec]
    method = _of_inputs(getattr(server, '_' + name), inputs)
    # autograph=False: the served code branches on Python values only, and
    # converting every TFP and tfp_glow function it calls costs trace time.
    declared = tf.function(method, input_signature=inputs, autograph=False)
    functions[name] = declared.get_concrete_function()
    any_shape = [tf.TensorSpec(None, s.dtype, name=s.name)
                 if s.name in shaped else s for s in inputs]
    setattr(server, name, tf.function(
        _checking(method, declared, name, shaped), input_signature=any_shape,
        autograph=False))
  return functions


def _of_inputs(method, inputs):
  """`method`, taking exactly the `inputs` (by their names), in order.

  A signature's function is called by position: without labels, a context
  must not land in `method`'s `labels` parameter.
  """
  names = [spec.name for spec in inputs]
  parameters = inspect.Signature([
      inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
      for n in names])

  def call(*args, **kwargs):
    return method(**parameters.bind(*args, **kwargs).arguments)

  call.__signature__ = parameters
  call.__name__ = method.__name__
  return call


def _checking(method, declared, signature, shaped):
  """`declared`, after `_checked` of its arguments named in `shaped`.

  The checked arguments have the declared shapes, as `declared` requires
  (inside, `_checked` runs again: it is what guards the signature). The
  wrapper takes `method`'s parameters, names and defaults, so that the
  attribute accepts the same positional and keyword arguments.
  """
  parameters = inspect.signature(method)

  def call(*args, **kwargs):
    bound = parameters.bind(*args, **kwargs)
    for what, shape in shaped.items():
      if what in bound.arguments:
        bound.arguments[what] = _checked(bound.arguments[what], shape,
                                         signature, what)
    return declared(*bound.args, **bound.kwargs)

  call.__signature__ = parameters
  call.__name__ = signature
  return call


def export_saved_model(model_or_glow: Any, path: str, *,
                       num_samples: int = 16) -> str:
  """Writes a SavedModel serving `log_prob`, `bits_per_dim`, `sample`, ...

  The SavedModel needs only TensorFlow to load (`tf.saved_model.load`, or
  `keras.layers.TFSMLayer` in Keras 3). Its signatures, all with an unknown
  batch size, declare these shapes (`saved_model_cli show --dir path --all`
  prints them, with -1 for the batch):

  ```none
  log_prob(images [N, H, W, C] float)          -> log_prob [N]
  bits_per_dim(images [N, H, W, C] float)      -> bits_per_dim [N]
      integer-valued pixels, dequantized with a fixed seed (reproducible);
      a variational GlowModel's: its bound with u ~ q(u | x)
  importance_weighted_bits_per_dim(images)     -> bits_per_dim [N], num_samples
      the K-sample importance-weighted bound (K = `num_samples`, returned),
      the model's noise (uniform, or q) as proposal
  sample(num int32, temperature float, seed int32) -> images [num, H, W, C]
  encode(images [N, H, W, C] float)            -> latents [N, *latent_shape]
  decode(latents [N, *latent_shape] float)     -> images [N, H, W, C]
  ```

  A class-conditional model adds `labels [N] int32` to each, a conditional
  model (`context_shape` set) `context [N, ...]` (after `labels`), one
  context per example or one for all (batch 1; `sample` takes one per
  sample, `num`, or one):

  ```none
  model_or_glow                      context                 served through
  Glow                               [N, *context_shape]     (the Glow's)
  GlowModel without context_encoder  [N, *context_shape]     (the Glow's)
  GlowModel with a context_encoder   [N, *raw shape], dtype  the encoder
                                     of `context_spec()`
  another model with a `glow`        [N, *context_shape]     (the Glow's)
  ```

  The raw shape is the encoder's input: a functional encoder's `keras.Input`,
  or the raw context the model saw at its init (or the input shape a built
  encoder recorded). `images` are in pixel space `[0, 2**num_bits)`. A wrong shape fails at call time with a
  message naming the signature and the expected shape, such as ``[log_prob:
  `images` must have shape [batch, 8, 8, 1]; got shape] [2 9 9 1]``, called
  as a signature (`loaded.signatures['log_prob'](images=x)`) or as an
  attribute (`loaded.log_prob(x)`, which accepts any shape and checks it in
  the graph). The data-init state and every permutation are saved: nothing
  is re-initialised on load.

  Args:
    model_or_glow: a `tfp_glow.Glow`, or a model with a `glow` attribute
      (such as `tfp_glow.GlowModel`).
    path: directory to write.
    num_samples: Python `int` K >= 1 of the importance-weighted signature.
      Default value: `16`.

  Returns:
    `path`.

  Raises:
    TypeError: if `model_or_glow` holds no Glow.
    ValueError: if the Glow was never initialised (its ActNorms would be the
      identity and the export almost surely a mistake), if the raw context's
      shape is not known (see `GlowModel.context_spec`), or if the encoder
      does not map it to the Glow's context shape.
  """
  glow = getattr(model_or_glow, 'glow', model_or_glow)
  if not hasattr(glow, 'latent_shape') or not hasattr(glow, 'bijector'):
    raise TypeError('`model_or_glow` must be a tfp_glow.Glow or have a `glow` '
                    f'attribute; got {type(model_or_glow).__name__}.')
  if not glow.is_initialized:
    raise ValueError('`model_or_glow` has not been initialised: run '
                     '`glow.initialize(batch)` (or train it) before exporting.')
  encoder = None
  spec = _glow_context_spec(glow)
  if model_or_glow is not glow and spec is not None:
    encoder = getattr(model_or_glow, 'context_encoder', None)
    if hasattr(model_or_glow, 'context_spec'):
      spec = model_or_glow.context_spec()
  dequantizer = getattr(model_or_glow, 'dequantizer', None)
  num_samples = _validation.positive_int('num_samples', num_samples)
  server = _Server(glow, spec, encoder, dequantizer, num_samples)
  tf.saved_model.save(server, path, signatures=_serve(server, glow.dtype))
  return path


def _glow_context_spec(glow) -> Optional[tf.TensorSpec]:
  """`[None, *context_shape]` in the Glow's dtype, or `None`."""
  shape: Optional[List[int]] = getattr(glow, 'context_shape', None)
  if shape is None:
    return None
  return tf.TensorSpec([None, *shape], glow.dtype, name='context')
