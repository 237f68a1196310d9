"""SavedModel export: serve a trained Glow where only TensorFlow is installed."""

import inspect
from typing import Any

import tensorflow as tf

__all__ = ['export_saved_model', 'SIGNATURES']

SIGNATURES = ('log_prob', 'bits_per_dim', 'sample', 'encode', 'decode')

# bits_per_dim dequantizes with this fixed stateless seed, so that serving the
# same images twice gives the same number.
_DEQUANTIZATION_SEED = (0, 0)


def _checked(images, expected_shape, signature, what):
  """Asserts the per-example shape of a served input, naming the signature."""
  expected = list(expected_shape)
  message = (f'{signature}: `{what}` must have shape [batch, '
             f'{", ".join(str(d) for d in expected)}]')
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
  ok = tf.logical_and(tf.equal(padded[n + 1], -1),
                      tf.reduce_all(tf.equal(padded[1:n + 1], expected)))
  check = tf.debugging.Assert(ok, [message + '; got shape', tf.shape(images)],
                              summarize=8)
  with tf.control_dependencies([check]):
    return tf.ensure_shape(tf.identity(images), [None] + expected)


class _Server(tf.Module):
  """Holds the Glow's variables and the serving functions."""

  def __init__(self, glow):
    super().__init__(name='glow_server')
    self.glow = glow
    self.image_shape = list(glow.image_shape)
    self.latent_shape = list(glow.latent_shape)
    self.conditional = bool(glow.num_classes)

  def _labels(self, labels, batch):
    if not self.conditional:
      return None
    tf.debugging.assert_equal(
        tf.shape(labels)[0], batch,
        message='`labels` must have one class id per example')
    return labels

  def _log_prob(self, images, labels=None):
    x = _checked(images, self.image_shape, 'log_prob', 'images')
    return {'log_prob': self.glow.log_prob(
        x, labels=self._labels(labels, tf.shape(x)[0]))}

  def _bits_per_dim(self, images, labels=None):
    x = _checked(images, self.image_shape, 'bits_per_dim', 'images')
    return {'bits_per_dim': self.glow.bits_per_dim(
        x, labels=self._labels(labels, tf.shape(x)[0]),
        seed=_DEQUANTIZATION_SEED)}

  def _sample(self, num, temperature, seed, labels=None):
    seed_pair = tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])
    images = self.glow.sample(
        num, temperature=temperature, seed=seed_pair,
        labels=self._labels(labels, num))
    return {'images': images}

  def _encode(self, images, labels=None):
    x = _checked(images, self.image_shape, 'encode', 'images')
    return {'latents': self.glow.encode(
        x, labels=self._labels(labels, tf.shape(x)[0]))}

  def _decode(self, latents, labels=None):
    z = _checked(latents, self.latent_shape, 'decode', 'latents')
    return {'images': self.glow.decode(
        z, labels=self._labels(labels, tf.shape(z)[0]))}


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
      'sample': [num, temperature, seed], 'encode': [images],
      'decode': [latents],
  }
  shaped = {'images': server.image_shape, 'latents': server.latent_shape}
  functions = {}
  for name, inputs in specs.items():
    if server.conditional:
      inputs = inputs + [labels]
    method = getattr(server, '_' + name)
    declared = tf.function(method, input_signature=inputs)
    functions[name] = declared.get_concrete_function()
    any_shape = [tf.TensorSpec(None, s.dtype, name=s.name)
                 if s.name in shaped else s for s in inputs]
    setattr(server, name, tf.function(
        _checking(method, declared, name, shaped), input_signature=any_shape))
  return functions


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


def export_saved_model(model_or_glow: Any, path: str) -> str:
  """Writes a SavedModel serving `log_prob`, `bits_per_dim`, `sample`, ...

  The SavedModel needs only TensorFlow to load (`tf.saved_model.load`, or
  `keras.layers.TFSMLayer` in Keras 3). Its signatures, all with an unknown
  batch size, declare these shapes (`saved_model_cli show --dir path --all`
  prints them, with -1 for the batch):

  ```none
  log_prob(images [N, H, W, C] float)          -> log_prob [N]
  bits_per_dim(images [N, H, W, C] float)      -> bits_per_dim [N]
      integer-valued pixels, dequantized with a fixed seed (reproducible)
  sample(num int32, temperature float, seed int32) -> images [num, H, W, C]
  encode(images [N, H, W, C] float)            -> latents [N, *latent_shape]
  decode(latents [N, *latent_shape] float)     -> images [N, H, W, C]
  ```

  A class-conditional model adds `labels [N] int32` to each. `images` are in
  pixel space `[0, 2**num_bits)`. A wrong shape fails at call time with a
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

  Returns:
    `path`.

  Raises:
    TypeError: if `model_or_glow` holds no Glow.
    ValueError: if the Glow was never initialised (its ActNorms would be the
      identity and the export almost surely a mistake).
  """
  glow = getattr(model_or_glow, 'glow', model_or_glow)
  if not hasattr(glow, 'latent_shape') or not hasattr(glow, 'bijector'):
    raise TypeError('`model_or_glow` must be a tfp_glow.Glow or have a `glow` '
                    f'attribute; got {type(model_or_glow).__name__}.')
  if not glow.is_initialized:
    raise ValueError('`model_or_glow` has not been initialised: run '
                     '`glow.initialize(batch)` (or train it) before exporting.')
  server = _Server(glow)
  tf.saved_model.save(server, path, signatures=_serve(server, glow.dtype))
  return path
