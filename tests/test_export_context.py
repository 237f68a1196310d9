"""SavedModels of a conditional Glow: every signature takes the raw `context`
(through the exported `context_encoder`), served in a process that cannot
import tfp_glow or TFP, as in tests/test_export.py."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow import export
from tfp_glow.training import model as gm
from tfp_glow.training._keras import keras

SHAPE = (8, 8, 1)
RAW = 3


def _data(n=16, seed=0):
  """`(pixels, raw)`: integer pixels (float32) set by `raw[:, 0]`."""
  rng = np.random.default_rng(seed)
  raw = rng.normal(size=(n, RAW)).astype(np.float32)
  level = np.where(raw[:, 0] > 0, 144.0, 80.0)[:, None, None, None]
  pixels = level + rng.integers(0, 32, size=(n,) + SHAPE)
  return pixels.astype(np.float32), raw


def _model_with_encoder():
  """A GlowModel with a Dense encoder of 3 raw numbers, trained 4 steps."""
  glow = tfp_glow.Glow(SHAPE, num_levels=2, num_steps=1, hidden_channels=8,
                       context_shape=(4,), seed=0)
  encoder = keras.Sequential([keras.Input((RAW,)), keras.layers.Dense(
      4, kernel_initializer=keras.initializers.GlorotUniform(seed=0))])
  model = gm.GlowModel(glow, context_encoder=encoder, init_batch_size=16)
  model.compile(gm.default_optimizer(5e-3, warmup_steps=1))
  pixels, raw = _data()
  model.fit({'images': pixels, 'context': raw}, batch_size=8, epochs=2,
            verbose=0)
  return model


def _bare_glow():
  """A Glow with classes and a 4x4x1 image context, after 3 gradient steps
  (so that every layer, and the context's projections, moved)."""
  glow = tfp_glow.Glow(SHAPE, num_levels=2, num_steps=1, hidden_channels=8,
                       num_classes=3, context_shape=(4, 4, 1), seed=0)
  pixels, _ = _data()
  x = pixels + 0.5
  labels = np.arange(16, dtype=np.int32) % 3
  context = tf.nn.avg_pool2d(x / 256.0, 2, 2, 'VALID')
  glow.initialize(x, labels=labels, context=context)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(glow.log_prob(x, labels=labels, context=context))
    grads = tape.gradient(loss, glow.trainable_variables)
    for v, g in zip(glow.trainable_variables, grads):
      v.assign_sub(3e-3 * g)

  for _ in range(3):
    step()
  return glow, labels, context.numpy()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  work = tmp_path_factory.mktemp('export_context')
  model = _model_with_encoder()
  glow, labels, image_context = _bare_glow()
  paths = {'model': str(work / 'model'), 'serve': str(work / 'serve'),
           'glow': str(work / 'glow')}
  export.export_saved_model(model, paths['model'])
  model.export(paths['serve'])
  export.export_saved_model(glow, paths['glow'])
  return dict(model=model, glow=glow, labels=labels,
              image_context=image_context, paths=paths, work=work)


@pytest.fixture(scope='module')
def loaded(exported):
  return tf.saved_model.load(exported['paths']['model'])


_CHILD = textwrap.dedent('''
    import json, sys
    import numpy as np

    class _Blocked:  # Only TensorFlow (and Keras) may be imported here.
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tfp_glow', 'tensorflow_probability'):
          raise ImportError('blocked: ' + name)
    sys.meta_path.insert(0, _Blocked())
    try:
      import tfp_glow
      raise SystemExit('tfp_glow must not be importable here')
    except ImportError:
      pass
    import tensorflow as tf

    paths = json.loads(sys.argv[1])
    ref = np.load(sys.argv[2])
    out = {}
    pixels = tf.constant(ref['pixels'])
    images = tf.constant(ref['pixels'] + ref['noise'])
    raw = tf.constant(ref['raw'])

    model = tf.saved_model.load(paths['model'])
    sig = model.signatures
    out['log_prob'] = sig['log_prob'](images=images, context=raw)['log_prob']
    out['bits_per_dim'] = sig['bits_per_dim'](
        images=pixels, context=raw)['bits_per_dim']
    latents = sig['encode'](images=images, context=raw)['latents']
    decoded = sig['decode'](latents=latents, context=raw)['images']
    out['round_trip_error'] = np.abs(decoded.numpy() - images.numpy()).max()
    draw = lambda context: sig['sample'](
        num=tf.constant(4), temperature=tf.constant(0.7), seed=tf.constant(5),
        context=context)['images'].numpy()
    out['sample'] = draw(raw[:1])            # One context for all 4.
    out['sample_repeated'] = draw(tf.repeat(raw[:1], 4, axis=0))
    out['attribute_log_prob'] = model.log_prob(images, raw)['log_prob']

    serve = tf.saved_model.load(paths['serve'])
    out['served'] = serve.serve(pixels, raw)

    glow = tf.saved_model.load(paths['glow'])
    out['glow_log_prob'] = glow.signatures['log_prob'](
        images=images, labels=tf.constant(ref['labels']),
        context=tf.constant(ref['image_context']))['log_prob']

    def shapes(specs):
      return {k: s.shape.as_list() for k, s in specs.items()}
    declared = {
        which: {name: shapes(fn.structured_input_signature[1])
                for name, fn in loaded.signatures.items()}
        for which, loaded in (('model', model), ('glow', glow))}
    declared['serve'] = shapes(
        serve.signatures['serving_default'].structured_input_signature[1])
    np.savez(sys.argv[3], **{k: np.asarray(v) for k, v in out.items()})
    with open(sys.argv[4], 'w') as f:
      json.dump(declared, f)
''')


def test_serves_the_conditional_model_without_tfp_glow(exported, tmp_path):
  model, glow = exported['model'], exported['glow']
  pixels, raw = _data()
  noise = np.random.default_rng(7).uniform(size=pixels.shape).astype(
      np.float32)
  np.savez(tmp_path / 'ref.npz', pixels=pixels, noise=noise, raw=raw,
           labels=exported['labels'], image_context=exported['image_context'])
  script = tmp_path / 'child.py'
  script.write_text(_CHILD)
  result = subprocess.run(
      [sys.executable, str(script), json.dumps(exported['paths']),
       str(tmp_path / 'ref.npz'), str(tmp_path / 'out.npz'),
       str(tmp_path / 'declared.json')],
      cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  out = np.load(tmp_path / 'out.npz')

  # The SavedModel encodes the raw context as the model does.
  context = model.context_encoder(raw)
  np.testing.assert_allclose(out['log_prob'],
                             model(pixels + noise, context=raw), rtol=1e-6)
  np.testing.assert_array_equal(out['attribute_log_prob'], out['log_prob'])
  np.testing.assert_allclose(
      out['bits_per_dim'],
      model.glow.bits_per_dim(pixels, seed=export._DEQUANTIZATION_SEED,
                              context=context), rtol=1e-6)
  assert float(out['round_trip_error']) < 1e-3
  # A context of batch 1 serves every sample, as the same context repeated.
  np.testing.assert_array_equal(out['sample'], out['sample_repeated'])
  np.testing.assert_allclose(
      out['sample'], model.glow.sample(4, temperature=0.7, seed=(5, 0),
                                       context=context[:1]), atol=1e-3)
  # `model.export`: the bits/dim `evaluate` averages (the same noise).
  result = model.evaluate({'images': pixels, 'context': raw}, batch_size=16,
                          verbose=0, return_dict=True)
  np.testing.assert_allclose(out['served'].mean(), result['bits_per_dim'],
                             rtol=1e-5)
  # A bare Glow: labels and the Glow's own (image) context.
  np.testing.assert_allclose(
      out['glow_log_prob'],
      glow.log_prob(pixels + noise, labels=exported['labels'],
                    context=exported['image_context']), rtol=1e-6)

  with open(tmp_path / 'declared.json') as f:
    declared = json.load(f)
  images, latents = [None, *SHAPE], [None, 2, 2, 16]
  inputs = {'log_prob': {'images': images}, 'bits_per_dim': {'images': images},
            'importance_weighted_bits_per_dim': {'images': images},
            'sample': {'num': [], 'temperature': [], 'seed': []},
            'encode': {'images': images}, 'decode': {'latents': latents}}
  assert declared['model'] == {
      name: dict(spec, context=[None, RAW]) for name, spec in inputs.items()}
  assert declared['glow'] == {
      name: dict(spec, labels=[None], context=[None, 4, 4, 1])
      for name, spec in inputs.items()}
  assert declared['serve'] == {'images': images, 'context': [None, RAW]}


@pytest.mark.parametrize('signature', export.SIGNATURES)
@pytest.mark.parametrize('way', ['signature', 'attribute'])
def test_a_wrong_context_shape_names_the_signature(exported, loaded,
                                                   signature, way):
  inputs = {'images': tf.zeros([2, *SHAPE]), 'latents': tf.zeros([2, 2, 2, 16]),
            'num': tf.constant(2), 'temperature': tf.constant(0.7),
            'seed': tf.constant(1)}
  fn = loaded.signatures[signature]
  names = list(fn.structured_input_signature[1])
  kwargs = {name: inputs[name] for name in names if name != 'context'}
  kwargs['context'] = tf.zeros([2, RAW + 1])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf'{signature}: `context` must have shape '
                     rf'\[batch, 3\]; got shape\] \[2 4\]'):
    if way == 'signature':
      fn(**kwargs)
    else:
      getattr(loaded, signature)(**kwargs)


def test_a_context_per_example_or_one_for_all(exported, loaded):
  model = exported['model']
  pixels, raw = _data(4)
  x = tf.constant(pixels + 0.5)
  one = loaded.signatures['log_prob'](images=x, context=raw[:1])['log_prob']
  np.testing.assert_allclose(
      one, model(x, context=np.repeat(raw[:1], 4, axis=0)), rtol=1e-6)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'log_prob: `context` must hold one context per '
                     r'example, or one for all \(batch 1\); got\] \[3\] '
                     r'\[contexts for\] \[4\]'):
    loaded.signatures['log_prob'](images=x, context=raw[:3])


def test_a_raw_context_of_free_length(tmp_path):
  """An encoder of sequences [N, T, 3]: the signature declares [None, None,
  3], and serves contexts of any length T."""
  glow = tfp_glow.Glow(SHAPE, num_levels=2, num_steps=1, hidden_channels=8,
                       context_shape=(4,), seed=0)
  inputs = keras.Input((None, RAW))
  encoder = keras.Model(inputs, keras.layers.Dense(4)(
      keras.layers.GlobalAveragePooling1D()(inputs)))
  model = gm.GlowModel(glow, context_encoder=encoder)
  pixels, _ = _data(4)
  sequences = np.random.default_rng(0).normal(size=(4, 5, RAW)).astype(
      np.float32)
  model.initialize(pixels, context=sequences)
  assert model.context_spec().shape.as_list() == [None, None, RAW]
  path = str(tmp_path / 'sequences')
  export.export_saved_model(model, path)
  loaded = tf.saved_model.load(path)
  x = tf.constant(pixels + 0.5)
  for length in (5, 2):
    np.testing.assert_allclose(
        loaded.log_prob(x, sequences[:, :length])['log_prob'],
        model(x, context=sequences[:, :length]), rtol=1e-6)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'log_prob: `context` must have shape \[batch, \?, '
                     r'3\]; got shape\] \[4 5\]'):
    loaded.log_prob(x, sequences[:, :, 0])


def test_export_needs_the_raw_context_shape(tmp_path):
  glow = tfp_glow.Glow(SHAPE, num_levels=2, num_steps=1, hidden_channels=8,
                       context_shape=(4,), seed=0)
  pixels, raw = _data(4)
  # Initialised outside the model: the model never saw a raw context, and
  # its encoder was never built.
  glow.initialize(pixels + 0.5, context=np.zeros([4, 4], np.float32))
  model = gm.GlowModel(glow, context_encoder=keras.layers.Dense(4))
  for write in (lambda: export.export_saved_model(model, str(tmp_path / 'a')),
                lambda: model.export(str(tmp_path / 'b'))):
    with pytest.raises(ValueError, match=(
        r'The shape of the raw context \(the input of `context_encoder`\) is '
        r'not known.*model.initialize\(images, context=raw_context\)')):
      write()
  assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()
  # `fit` builds the encoder on its first batch (the Glow stays as it was
  # initialised) and records the raw context: now it can be exported.
  model.compile(gm.default_optimizer(1e-3, warmup_steps=1))
  history = model.fit({'images': pixels, 'context': raw}, batch_size=4,
                      verbose=0).history
  assert np.isfinite(history['loss'][0]) and model.context_encoder.built
  assert model.context_spec().shape.as_list() == [None, RAW]
