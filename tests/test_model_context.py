"""`GlowModel` of a conditional Glow p(x | context): dict data, the
`context_encoder` trained with the Glow, the data rules of the context, the
saved and restored encoder, and a user's Keras 3 model feeding a Glow's
context (Keras 3 here; tf_keras in a fresh process, as in
tests/test_model_tf_keras.py).
"""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow.training import batches
from tfp_glow.training import model as gm
from tfp_glow.training._keras import keras

SHAPE = (8, 8, 1)
NUM_DIMS = math.prod(SHAPE)
RAW = 3            # A raw vector context: 3 numbers per image.
CONTEXT = (4,)     # The Glow's context: what the encoder maps them to.
InvalidArgument = tf.errors.InvalidArgumentError


def _data(n=32, seed=0):
  """`(images, raw)`: uint8 images whose brightness is set by `raw[:, 0]`,
  so that the context tells the model something."""
  rng = np.random.default_rng(seed)
  raw = rng.normal(size=(n, RAW)).astype(np.float32)
  level = np.where(raw[:, 0] > 0, 144, 80)[:, None, None, None]
  images = level + rng.integers(0, 32, size=(n,) + SHAPE)
  return images.astype(np.uint8), raw


def _dataset(images, context, labels=None, batch_size=16):
  data = {'images': images, 'context': context}
  if labels is not None:
    data['labels'] = labels
  return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def _glow(context_shape=CONTEXT, seed=0, num_steps=2, **overrides):
  """A small Glow; 1 step per level where nothing is learned (faster)."""
  return tfp_glow.Glow(SHAPE, num_levels=2, num_steps=num_steps,
                       hidden_channels=8, context_shape=context_shape,
                       seed=seed, **overrides)


def _encoder(seed=0, units=4):
  return keras.Sequential([
      keras.Input((RAW,)),
      keras.layers.Dense(units, kernel_initializer=(
          keras.initializers.GlorotUniform(seed=seed)))], name='encoder')


def _model(glow=None, encoder=None, *, seed=0, **kwargs):
  model = gm.GlowModel(glow or _glow(seed=seed), context_encoder=encoder,
                       init_batch_size=32, **kwargs)
  model.compile(gm.default_optimizer(5e-3, warmup_steps=2))
  return model


def _values(variables):
  return [np.array(v.numpy()) for v in variables]


class _Snapshot(keras.callbacks.Callback):
  """The `layer`'s trainable values when `fit` starts (after its init)."""

  def __init__(self, layer):
    super().__init__()
    self.layer = layer
    self.at_begin = None

  def on_train_begin(self, logs=None):
    self.at_begin = _values(self.layer.trainable_variables)


def _raises(error, call, *parts):
  """Runs `call`, which must raise `error` with every string of `parts`."""
  with pytest.raises(error) as info:
    call()
  message = str(info.value)
  for part in parts:
    assert part in message, (part, message[-2000:])


@pytest.fixture(scope='module')
def trained():
  """A vector-context model with a Dense encoder, trained 3 epochs on dicts.

  Tests may read it but not change it.
  """
  images, raw = _data()
  model = _model(encoder=_encoder())
  model.initialize(images, context=raw)
  dataset = _dataset(images, raw)
  before = model.evaluate(dataset, verbose=0, return_dict=True)
  encoder_before = _values(model.context_encoder.trainable_variables)
  history = model.fit(dataset, epochs=3, verbose=0)
  after = model.evaluate(dataset, verbose=0, return_dict=True)
  return dict(model=model, images=images, raw=raw, before=before,
              after=after, history=history.history,
              encoder_before=encoder_before)


def test_fit_on_dicts_trains_the_encoder_and_lowers_bits_per_dim(trained):
  model = trained['model']
  encoder = model.context_encoder
  model_ids = {id(v) for v in model.trainable_variables}
  assert encoder.trainable_variables
  assert {id(v) for v in encoder.trainable_variables} <= model_ids
  assert {id(v) for v in model.glow.trainable_variables} <= model_ids
  bpd = trained['history']['bits_per_dim']
  assert np.all(np.isfinite(bpd)) and bpd[-1] < bpd[0]
  assert trained['after']['bits_per_dim'] < (
      trained['before']['bits_per_dim'] - 0.3)
  # Gradients reached every encoder variable (kernel and bias).
  for before, v in zip(trained['encoder_before'],
                       encoder.trainable_variables):
    assert not np.array_equal(before, v.numpy()), v.name
  # The context reaches the density: other contexts, other log-densities.
  x = trained['images'][:8].astype(np.float32) + 0.5
  raw = trained['raw']
  same = model(x, context=raw[:8]).numpy()
  other = model(x, context=raw[8:16]).numpy()
  assert np.all(np.isfinite(same)) and not np.allclose(same, other)
  assert model.context_spec() == tf.TensorSpec([None, RAW], tf.float32,
                                               name='context')


def test_an_image_context_through_a_conv_encoder():
  """Raw 8x8x1 context images, encoded to the Glow's 4x4x2 context by a
  layer that `fit`'s init builds (no variables before, so `compile` could
  not build the optimizer for them)."""
  images, _ = _data()
  raw = images.astype(np.float32) / 255.0
  encoder = keras.layers.Conv2D(2, 3, strides=2, padding='same',
                                kernel_initializer=(
                                    keras.initializers.GlorotUniform(seed=0)))
  model = _model(_glow((4, 4, 2)), encoder)
  assert not encoder.built
  dataset = _dataset(images, raw)
  snapshot = _Snapshot(encoder)
  history = model.fit(dataset, epochs=3, verbose=0, callbacks=[
      snapshot]).history['bits_per_dim']
  assert model.glow.is_initialized and encoder.built
  assert model.context_spec().shape.as_list() == [None, *SHAPE]
  encoder_before = snapshot.at_begin
  assert np.all(np.isfinite(history)) and history[-1] < history[0] - 0.3
  for before, v in zip(encoder_before, encoder.trainable_variables):
    assert not np.array_equal(before, v.numpy()), v.name


def test_without_encoder_the_raw_context_is_the_glows():
  """A 4x4x1 image context, in a dict of arrays (Keras wraps it in a tuple)."""
  images, _ = _data()
  context = tf.nn.avg_pool2d(images.astype(np.float32) / 255.0, 2, 2,
                             'VALID').numpy()
  model = _model(_glow((4, 4, 1), num_steps=1))
  history = model.fit({'images': images, 'context': context}, batch_size=16,
                      epochs=1, verbose=0).history
  assert np.isfinite(history['loss'][0])
  x = images[:8].astype(np.float32) + 0.5
  np.testing.assert_array_equal(
      model(x, context=context[:8]).numpy(),
      model.glow.log_prob(x, context=context[:8]).numpy())
  assert model.context_spec().shape.as_list() == [None, 4, 4, 1]


def test_dicts_work_for_unconditional_and_class_conditional_glows():
  images, _ = _data()
  labels = np.arange(32) % 3
  for num_classes in (None, 3):
    model = _model(_glow(None, num_classes=num_classes, num_steps=1))
    tuples = tf.data.Dataset.from_tensor_slices(
        (images, labels) if num_classes else images).batch(16)
    dicts = tf.data.Dataset.from_tensor_slices(
        {'images': images, 'labels': labels} if num_classes else
        {'images': images}).batch(16)
    if num_classes:
      model.initialize(images, labels)
    else:  # The init and a step from dicts.
      history = model.fit(dicts, epochs=1, steps_per_epoch=1,
                          verbose=0).history
      assert np.isfinite(history['loss'][0])
    # The same batches and noise, either form: the same numbers.
    assert model.evaluate(dicts, verbose=0) == model.evaluate(tuples,
                                                              verbose=0)


def test_a_glow_with_classes_and_a_context_trains_its_classifier():
  images, raw = _data()
  labels = (raw[:, 0] > 0).astype(np.int64) + np.arange(32) % 2
  model = _model(_glow(num_classes=3, num_steps=1), _encoder(), weight_y=0.5)
  history = model.fit(_dataset(images, raw, labels), epochs=1,
                      verbose=0).history
  # loss = bits/dim + 0.5 * bits_y: the classifier read the top latent of
  # the images given their contexts (a Glow with a context requires it).
  gap = history['loss'][0] - history['bits_per_dim'][0]
  assert 0.5 * 0.5 < gap < 0.5 * 2.0, history
  logits = model._class_logits(images[:4].astype(np.float32) + 0.5,
                               model.context_encoder(raw[:4]))
  assert logits.shape == (4, 3) and np.all(np.isfinite(logits))


def test_the_init_batch_of_dict_data():
  images, raw = _data()
  labels = np.arange(32) % 3
  first = lambda data: batches.take_init_batch(data, None, 20)
  for data in (_dataset(images, raw, labels, batch_size=8),
               {'images': images, 'context': raw, 'labels': labels}):
    taken = first(data)
    np.testing.assert_array_equal(taken.images, images[:20])
    np.testing.assert_array_equal(taken.context, raw[:20])
    np.testing.assert_array_equal(taken.labels, labels[:20])
  taken = first(tf.data.Dataset.from_tensor_slices(images).batch(8))
  assert taken.labels is None and taken.context is None
  assert taken.images.shape == (20,) + SHAPE


def test_a_conditional_glow_needs_a_context():
  images, raw = _data()
  fresh = _model()
  expected = ('the Glow is conditional (context_shape=(4,)): the data must '
              "be dicts {'images': ..., 'context': ...} with one `context` "
              'per image; got')
  init = 'GlowModel.fit (data-dependent init): '
  _raises(ValueError, lambda: fresh.fit(images, batch_size=16, verbose=0),
          init + expected, 'got images only')
  labelled = tf.data.Dataset.from_tensor_slices((images, raw[:, 0])).batch(16)
  _raises(ValueError, lambda: fresh.fit(labelled, verbose=0),
          init + expected, 'got (images, labels) tuples')
  no_context = tf.data.Dataset.from_tensor_slices({'images': images}).batch(16)
  _raises(ValueError, lambda: fresh.fit(no_context, verbose=0),
          init + expected, "got dicts with keys ['images']")
  _raises(ValueError, lambda: fresh.initialize(images),
          'GlowModel.initialize: ' + expected, 'got context=None')
  assert not fresh.glow.is_initialized

  ready = _model()
  ready.initialize(images, context=raw[:, :1].repeat(4, axis=1))
  before = _values(ready.variables)
  _raises(ValueError, lambda: ready.fit(images, batch_size=16, verbose=0),
          'GlowModel.train_step: ' + expected)
  _raises(ValueError, lambda: ready.evaluate(no_context, verbose=0),
          'GlowModel.test_step: ' + expected, "got dicts with keys ['images']")
  for a, b in zip(before, _values(ready.variables)):
    np.testing.assert_array_equal(a, b)


def test_unknown_keys_and_misplaced_dicts():
  images, raw = _data()
  typo = tf.data.Dataset.from_tensor_slices(
      {'images': images, 'contexts': raw}).batch(16)
  _raises(ValueError, lambda: _model(encoder=_encoder()).fit(typo, verbose=0),
          'GlowModel.fit (data-dependent init): a dict of data must have the '
          "key 'images' and may have 'labels' and 'context'",
          "got keys ['contexts', 'images']: unknown keys ['contexts']")
  _raises(ValueError,
          lambda: _model(encoder=_encoder()).fit(
              {'images': images, 'context': raw}, raw[:, 0] > 0,
              batch_size=16, verbose=0),
          'a dict of data must be the whole element, with labels under its '
          "'labels' key")


def test_a_context_of_the_wrong_shape():
  images, raw = _data()
  _raises(ValueError,
          lambda: _model().fit(_dataset(images, raw), verbose=0),
          'GlowModel.fit (data-dependent init): `context` must have shape '
          "[N, 4] (the Glow's context_shape=(4,)); got shape [32, 3]",
          'Give the GlowModel a `context_encoder`')
  # An encoder whose output is not the Glow's context: in the init, in a
  # step (a Glow initialised beforehand) and in `call`.
  message = ("the `context_encoder` must map the context to the Glow's "
             'context, shape [N, 4] (context_shape=(4,)); its output has '
             'shape [{}, 5]')
  _raises(ValueError,
          lambda: _model(encoder=_encoder(units=5)).fit(
              _dataset(images, raw), verbose=0),
          'GlowModel.fit (data-dependent init): ' + message.format(32))
  model = _model(encoder=_encoder(units=5))
  model.glow.initialize(images.astype(np.float32) + 0.5,
                        context=np.ones([32, 4], np.float32))
  _raises(ValueError, lambda: model.fit(_dataset(images, raw), verbose=0),
          'GlowModel.train_step: ' + message.format('?'))
  _raises(ValueError,
          lambda: model(images[:2].astype(np.float32), context=raw[:2]),
          'GlowModel.call: ' + message.format(2))


def test_a_context_of_another_batch_size_or_not_finite():
  images, raw = _data()
  model = _model(_glow(num_steps=1), _encoder())
  # Static batch sizes: refused in Python, before the init runs.
  _raises(ValueError,
          lambda: model.initialize(images[:16], context=raw[:8]),
          'GlowModel.initialize: `context` must hold one context per image, '
          'shape [N, ...] with N = 16 the batch size of `images`; got shape '
          '[8, 3]')
  assert not model.glow.is_initialized
  # Batches whose sizes the trace does not know: asserted, no update.
  model.initialize(images, context=raw)
  zipped = tf.data.Dataset.zip((
      tf.data.Dataset.from_tensor_slices(images).batch(16),
      tf.data.Dataset.from_tensor_slices(raw).batch(8))).map(
          lambda x, c: {'images': x, 'context': c})
  before = _values(model.variables) + _values(model.optimizer.variables)
  parts = ['`context` must hold one context per image, shape [N, ...] with N '
           'the batch size of `images`; got', '[8]', 'contexts for', '[16]']
  _raises(InvalidArgument, lambda: model.fit(zipped, verbose=0),
          'GlowModel.train_step: ', *parts)
  _raises(InvalidArgument, lambda: model.evaluate(zipped, verbose=0),
          'GlowModel.test_step: ', *parts)
  nan = raw.copy()
  nan[3, 1] = np.nan
  _raises(InvalidArgument,
          lambda: model.fit(_dataset(images, nan), verbose=0),
          'GlowModel.train_step: `context` must be finite; got', '[1]',
          'NaN or inf values')
  after = _values(model.variables) + _values(model.optimizer.variables)
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)


def test_a_context_for_an_unconditional_glow_and_bad_encoders():
  images, raw = _data()
  _raises(ValueError,
          lambda: _model(_glow(None)).fit(_dataset(images, raw), verbose=0),
          'GlowModel.fit (data-dependent init): the data hold a `context`, '
          'but the Glow is not conditional (context_shape=None)')
  _raises(ValueError, lambda: gm.GlowModel(_glow(None),
                                           context_encoder=_encoder()),
          '`context_encoder` needs a conditional Glow',
          'context_shape=None')
  _raises(TypeError, lambda: gm.GlowModel(_glow(), context_encoder=tf.nn.relu),
          '`context_encoder` must be None or a Keras layer or model',
          'got builtins.function')
  import tf_keras  # pylint: disable=g-import-not-at-top
  _raises(TypeError, lambda: gm.GlowModel(
      _glow(), context_encoder=tf_keras.layers.Dense(4)),
          '`context_encoder` must be None or a Keras layer or model (of '
          'keras 3.', 'the active Keras', 'got tf_keras.')


def test_keras_file_round_trip_keeps_the_encoder(tmp_path, trained):
  model = trained['model']
  path = str(tmp_path / 'conditional.keras')
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, gm.GlowModel)
  config = model.get_config()
  assert config['context_encoder']['class_name'] == 'Sequential'
  assert json.loads(json.dumps(loaded.get_config())) == json.loads(
      json.dumps(config))
  x = trained['images'][:8].astype(np.float32) + 0.5
  raw = trained['raw'][:8]
  np.testing.assert_array_equal(loaded(x, context=raw).numpy(),
                                model(x, context=raw).numpy())
  for a, b in zip(loaded.context_encoder.variables,
                  model.context_encoder.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert int(loaded.optimizer.iterations.numpy()) == 6


def test_checkpoint_and_weights_files_restore_exactly(tmp_path, trained):
  model = trained['model']
  x = trained['images'][:8].astype(np.float32) + 0.5
  raw = trained['raw'][:8]
  expected = model(x, context=raw).numpy()
  path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
      str(tmp_path / 'ckpt'))
  # Other seeds everywhere: every value must come from the checkpoint.
  other = _model(encoder=_encoder(seed=1), seed=1)
  tf.train.Checkpoint(model=other, optimizer=other.optimizer).read(
      path).assert_consumed()
  assert other.glow.is_initialized
  np.testing.assert_array_equal(other(x, context=raw).numpy(), expected)
  for a, b in zip(_values(model.variables) + _values(model.optimizer.variables),
                  _values(other.variables) + _values(other.optimizer.variables)):
    np.testing.assert_array_equal(a, b)

  model.save_weights(str(tmp_path / 'conditional.weights.h5'))
  third = _model(encoder=_encoder(seed=2), seed=2)
  third.load_weights(str(tmp_path / 'conditional.weights.h5'))
  np.testing.assert_array_equal(third(x, context=raw).numpy(), expected)


class _Bits(keras.losses.Loss):
  """The user's loss: the mean of the model's output, its bits/dim."""

  def call(self, y_true, y_pred):
    del y_true
    return y_pred


def test_a_users_keras3_model_feeds_the_context_of_a_glow():
  """A functional model: the user's encoder, then a GlowModel's bits/dim."""
  images, raw = _data()
  density = gm.GlowModel(_glow(num_steps=1), name='density')
  x_in = keras.Input(SHAPE, name='x')
  raw_in = keras.Input((RAW,), name='raw')
  encoder = keras.layers.Dense(4, name='user_encoder', kernel_initializer=(
      keras.initializers.GlorotUniform(seed=0)))
  bits_per_dim = keras.layers.Lambda(
      lambda lp: -lp / (NUM_DIMS * math.log(2.0)), name='bits_per_dim')(
          density(x_in, context=encoder(raw_in)))
  user = keras.Model([x_in, raw_in], bits_per_dim)
  user.compile(keras.optimizers.Adam(5e-3), loss=_Bits())
  model_ids = {id(v) for v in user.trainable_variables}
  assert {id(v) for v in density.glow.trainable_variables} <= model_ids
  assert {id(v) for v in encoder.trainable_variables} <= model_ids

  # The Glow's ActNorm init, by hand (the GlowModel's `fit` is not used),
  # with the contexts the user's encoder gives.
  density.initialize(images, context=encoder(raw))
  x = images.astype(np.float32) + np.random.default_rng(1).uniform(
      size=images.shape).astype(np.float32)
  encoder_before = _values(encoder.trainable_variables)
  history = user.fit((x, raw), np.zeros(32), batch_size=16, epochs=3,
                     verbose=0).history['loss']
  assert np.all(np.isfinite(history)) and history[-1] < history[0]
  for before, v in zip(encoder_before, encoder.trainable_variables):
    assert not np.array_equal(before, v.numpy()), v.name
  # The user's loss is the GlowModel's bits/dim of p(x | encoder(raw)).
  expected = -density(x, context=encoder(raw)).numpy() / (
      NUM_DIMS * math.log(2.0))
  np.testing.assert_allclose(user.evaluate((x, raw), np.zeros(32),
                                           batch_size=32, verbose=0),
                             expected.mean(), rtol=1e-5)


_TF_KERAS_SCRIPT = textwrap.dedent('''
    import json, sys, tempfile
    import numpy as np
    import tensorflow as tf
    import tfp_glow
    from tfp_glow.training import model as gm
    from tfp_glow.training._keras import IS_LEGACY, keras

    def encoder(seed):
      return keras.Sequential([keras.Input((3,)), keras.layers.Dense(
          4, kernel_initializer=keras.initializers.GlorotUniform(seed=seed))])

    def build(seed):
      glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1,
                           hidden_channels=8, context_shape=(4,), seed=seed)
      model = gm.GlowModel(glow, context_encoder=encoder(seed),
                           init_batch_size=32)
      model.compile(gm.default_optimizer(5e-3, warmup_steps=2))
      return model

    rng = np.random.default_rng(0)
    raw = rng.normal(size=(32, 3)).astype(np.float32)
    level = np.where(raw[:, 0] > 0, 144, 80)[:, None, None, None]
    images = (level + rng.integers(0, 32, size=(32, 8, 8, 1))).astype(
        np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(
        {'images': images, 'context': raw}).batch(16)
    model = build(0)
    model.initialize(images, context=raw)
    before = model.evaluate(dataset, verbose=0, return_dict=True)
    kernel = model.context_encoder.trainable_variables[0]
    kernel_before = kernel.numpy().copy()
    history = model.fit(dataset, epochs=3, verbose=0).history
    after = model.evaluate(dataset, verbose=0, return_dict=True)

    work = tempfile.mkdtemp()
    x = images[:8].astype(np.float32) + 0.5
    expected = model(x, context=raw[:8]).numpy()
    model.save(work + '/conditional.keras')
    loaded = keras.models.load_model(work + '/conditional.keras')
    model.save_weights(work + '/conditional.weights.h5')
    other = build(1)
    other.load_weights(work + '/conditional.weights.h5')
    print('RESULT' + json.dumps(dict(
        legacy=IS_LEGACY, keras_version=keras.__version__,
        before=before['bits_per_dim'], after=after['bits_per_dim'],
        history=history['bits_per_dim'],
        kernel_changed=bool(np.abs(kernel.numpy() - kernel_before).min() > 0),
        encoder_trained=all(id(v) in {id(w) for w in model.trainable_variables}
                            for v in model.context_encoder.variables),
        keras_file_same=bool(np.array_equal(
            loaded(x, context=raw[:8]).numpy(), expected)),
        weights_file_same=bool(np.array_equal(
            other(x, context=raw[:8]).numpy(), expected)))))
''')


def test_fit_save_and_reload_under_tf_keras():
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1')
  proc = subprocess.run([sys.executable, '-c', _TF_KERAS_SCRIPT], env=env,
                        capture_output=True, text=True, timeout=300,
                        check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  out = json.loads(lines[0][len('RESULT'):])
  assert out['legacy'] and out['keras_version'].startswith('2.')
  assert np.all(np.isfinite(out['history']))
  assert out['history'][-1] < out['history'][0]
  assert out['after'] < out['before'] - 0.3
  assert out['kernel_changed'] and out['encoder_trained']
  assert out['keras_file_same'] and out['weights_file_same']
