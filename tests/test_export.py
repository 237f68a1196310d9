"""SavedModel export, loaded in a process that cannot import tfp_glow or TFP."""

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow import export

IMAGE_SHAPE = (8, 8, 1)
SEED = 11


def _trained_glow(num_classes):
  """A small Glow after a few plain gradient steps (all layers moved)."""
  glow = tfp_glow.Glow(IMAGE_SHAPE, num_levels=2, num_steps=2,
                       hidden_channels=8, num_classes=num_classes, seed=0)
  pixels = tf.floor(tf.random.stateless_uniform((16,) + IMAGE_SHAPE, (1, 2),
                                                0.0, 256.0))
  labels = tf.range(16) % 3 if num_classes else None
  x = pixels + tf.random.stateless_uniform(pixels.shape, (3, 4))
  glow.initialize(x, labels=labels)
  for _ in range(3):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(glow.log_prob(x, labels=labels))
    grads = tape.gradient(loss, glow.trainable_variables)
    for v, g in zip(glow.trainable_variables, grads):
      v.assign_sub(1e-3 * g)
  return glow, pixels, labels


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

    path, ref_path = sys.argv[1], sys.argv[2]
    ref = np.load(ref_path)
    loaded = tf.saved_model.load(path)
    kw = {'labels': tf.constant(ref['labels'])} if 'labels' in ref else {}
    sig = loaded.signatures
    images = tf.constant(ref['pixels'] + ref['noise'])
    out = {
        'log_prob': sig['log_prob'](images=images, **kw)['log_prob'].numpy(),
        'bits_per_dim': sig['bits_per_dim'](
            images=tf.constant(ref['pixels']), **kw)['bits_per_dim'].numpy(),
    }
    latents = sig['encode'](images=images, **kw)['latents']
    decoded = sig['decode'](latents=latents, **kw)['images'].numpy()
    out['round_trip_error'] = float(np.abs(decoded - images.numpy()).max())
    skw = {'labels': tf.constant(ref['labels'][:4])} if 'labels' in ref else {}
    draw = lambda: sig['sample'](num=tf.constant(4), temperature=tf.constant(
        0.7), seed=tf.constant(5), **skw)['images'].numpy()
    first, second = draw(), draw()
    out['sample_repeat_equal'] = bool((first == second).all())
    out['sample'] = first
    import keras
    layer = keras.layers.TFSMLayer(path, call_endpoint='log_prob')
    out['tfsm_log_prob'] = np.asarray(layer(images, **kw)['log_prob'])
    np.savez(sys.argv[3], **{k: np.asarray(v) for k, v in out.items()})

    # What a client with only the SavedModel sees: the declared shapes, and
    # the message of a wrong shape through a signature and an attribute.
    def shapes(specs):
      return {k: s.shape.as_list() for k, s in specs.items()}
    declared = {name: {'inputs': shapes(fn.structured_input_signature[1]),
                       'outputs': shapes(fn.structured_outputs)}
                for name, fn in sig.items()}
    def error(call):
      try:
        call()
      except Exception as e:  # Whatever TensorFlow raises, keep its text.
        return type(e).__name__ + ': ' + str(e)
      return 'no error'
    narrow = images[:, :, 1:]              # 16 images of 8x7x1
    wrong_latents = tf.zeros([16, 4, 4, 1])  # not 2x2x16
    errors = {
        'signature images': error(
            lambda: sig['log_prob'](images=narrow, **kw)),
        'attribute images': error(lambda: loaded.log_prob(narrow, **kw)),
        'signature latents': error(
            lambda: sig['decode'](latents=wrong_latents, **kw)),
        'attribute latents': error(lambda: loaded.decode(wrong_latents, **kw)),
    }
    with open(sys.argv[4], 'w') as f:
      json.dump({'declared': declared, 'errors': errors}, f)
''')


@pytest.fixture(scope='module', params=[None, 3], ids=['unconditional',
                                                      'conditional'])
def exported(request, tmp_path_factory):
  glow, pixels, labels = _trained_glow(request.param)
  path = str(tmp_path_factory.mktemp('export') / 'glow')
  export.export_saved_model(glow, path)
  return glow, pixels, labels, path


@pytest.fixture(scope='module')
def loaded(exported):
  # Loaded once per export: the calls below never change its state.
  return tf.saved_model.load(exported[3])


def test_loads_and_serves_without_tfp_glow(exported, tmp_path):
  glow, pixels, labels, path = exported
  noise = tf.random.stateless_uniform(pixels.shape, (7, 7))
  ref = {'pixels': pixels.numpy(), 'noise': noise.numpy()}
  if labels is not None:
    ref['labels'] = labels.numpy().astype(np.int32)
  np.savez(tmp_path / 'ref.npz', **ref)
  script = tmp_path / 'child.py'
  script.write_text(_CHILD)
  result = subprocess.run(
      [sys.executable, str(script), path, str(tmp_path / 'ref.npz'),
       str(tmp_path / 'out.npz'), str(tmp_path / 'out.json')],
      cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  out = np.load(tmp_path / 'out.npz')
  kw = {'labels': labels} if labels is not None else {}
  # The same graph in this process gives the same bits; eager Glow agrees
  # up to float32 rounding of a differently fused computation.
  served = tf.saved_model.load(path).signatures['log_prob'](
      images=pixels + noise, **kw)['log_prob']
  np.testing.assert_array_equal(out['log_prob'], served)
  np.testing.assert_allclose(out['log_prob'],
                             glow.log_prob(pixels + noise, **kw), rtol=1e-6)
  np.testing.assert_array_equal(out['tfsm_log_prob'], out['log_prob'])
  np.testing.assert_allclose(
      out['bits_per_dim'],
      glow.bits_per_dim(pixels, seed=export._DEQUANTIZATION_SEED, **kw),
      rtol=1e-6)
  assert float(out['round_trip_error']) < 1e-3
  assert bool(out['sample_repeat_equal'])
  skw = {'labels': labels[:4]} if labels is not None else {}
  np.testing.assert_allclose(
      out['sample'], glow.sample(4, temperature=0.7, seed=(5, 0), **skw),
      atol=1e-3)

  with open(tmp_path / 'out.json') as f:
    seen = json.load(f)
  assert seen['declared'] == _expected_shapes(glow, labels is not None)
  for way in ('signature', 'attribute'):
    assert re.search(r'log_prob: `images` must have shape \[batch, 8, 8, 1\]; '
                     r'got shape\] \[16 8 7 1\]',
                     seen['errors'][f'{way} images']), seen['errors']
    assert re.search(r'decode: `latents` must have shape \[batch, 2, 2, 16\]; '
                     r'got shape\] \[16 4 4 1\]',
                     seen['errors'][f'{way} latents']), seen['errors']


def _expected_shapes(glow, conditional):
  # {signature: {'inputs': {name: shape}, 'outputs': ...}}; None: the batch.
  images = [None] + list(glow.image_shape)
  latents = [None] + list(glow.latent_shape)
  inputs = {'log_prob': {'images': images}, 'bits_per_dim': {'images': images},
            'importance_weighted_bits_per_dim': {'images': images},
            'sample': {'num': [], 'temperature': [], 'seed': []},
            'encode': {'images': images}, 'decode': {'latents': latents}}
  outputs = {'log_prob': {'log_prob': [None]},
             'bits_per_dim': {'bits_per_dim': [None]},
             'importance_weighted_bits_per_dim': {'bits_per_dim': [None],
                                                  'num_samples': []},
             'sample': {'images': images}, 'encode': {'latents': latents},
             'decode': {'images': images}}
  labels = {'labels': [None]} if conditional else {}
  return {name: {'inputs': dict(inputs[name], **labels),
                 'outputs': outputs[name]} for name in export.SIGNATURES}


def test_signatures_declare_their_shapes(exported, loaded):
  glow, _, labels, _ = exported
  assert sorted(loaded.signatures) == sorted(export.SIGNATURES)
  assert glow.latent_shape == (2, 2, 16)  # As the messages above expect.
  expected = _expected_shapes(glow, labels is not None)
  for name, fn in loaded.signatures.items():
    inputs = fn.structured_input_signature[1]
    assert {k: s.shape.as_list() for k, s in inputs.items()} == (
        expected[name]['inputs']), name
    assert {k: s.shape.as_list() for k, s in fn.structured_outputs.items()} == (
        expected[name]['outputs']), name


def test_saved_model_cli_prints_the_declared_shapes(exported):
  glow, _, labels, path = exported
  cli = pathlib.Path(sys.executable).with_name('saved_model_cli')
  result = subprocess.run([str(cli), 'show', '--dir', path, '--all'],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  # The SignatureDefs, which TF Serving's metadata reports, come first; the
  # "Concrete Functions" after them are the Python attributes (any shape).
  text = result.stdout.split('\nConcrete Functions:')[0]
  printed = {}
  for block in text.split("\nsignature_def['")[1:]:
    name = block.split("'", 1)[0]
    printed[name] = {'inputs': {}, 'outputs': {}}
    for kind, key, shape in re.findall(
        r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: \w+\s+"
        r"shape: ([^\n]+)", block):
      printed[name][kind][key] = shape
  assert printed.pop('__saved_model_init_op') == {
      'inputs': {}, 'outputs': {'__saved_model_init_op': 'unknown_rank'}}

  def as_printed(shape):  # (-1, 8, 8, 1), (-1) or ()
    return '(' + ', '.join('-1' if d is None else str(d) for d in shape) + ')'

  expected = _expected_shapes(glow, labels is not None)
  assert printed == {
      name: {kind: {k: as_printed(v) for k, v in shapes.items()}
             for kind, shapes in table.items()}
      for name, table in expected.items()}


@pytest.mark.parametrize('signature,argument,shape', [
    ('log_prob', 'images', [2, 9, 9, 1]),
    ('bits_per_dim', 'images', [8, 8, 1]),
    ('encode', 'images', [2, 8, 8, 3]),
    # The right sizes and one axis more: the declared rank must not hide it.
    ('log_prob', 'images', [2, 8, 8, 1, 1]),
    ('encode', 'images', []),
    ('decode', 'latents', [2, 4, 4, 4]),
    ('decode', 'latents', [2, 2, 2, 16, 1]),
])
@pytest.mark.parametrize('way', ['signature', 'attribute'])
def test_wrong_shapes_name_the_signature(exported, loaded, signature, argument,
                                         shape, way):
  glow, _, labels, _ = exported
  kw = {'labels': tf.constant([0, 1], tf.int32)} if labels is not None else {}
  expected = glow.image_shape if argument == 'images' else glow.latent_shape
  expected = ', '.join(str(d) for d in expected)
  got = ' '.join(str(d) for d in shape)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf'{signature}: `{argument}` must have shape '
                     rf'\[batch, {expected}\]; got shape\] \[{got}\]'):
    if way == 'signature':
      loaded.signatures[signature](**{argument: tf.zeros(shape)}, **kw)
    else:  # Positional, as `loaded.log_prob(images)` and TFSMLayer call it.
      getattr(loaded, signature)(tf.zeros(shape), **kw)


def test_attributes_take_keywords_and_serve_the_signatures(exported, loaded):
  _, pixels, labels, _ = exported
  kw = {'labels': labels} if labels is not None else {}
  served = loaded.signatures['encode'](images=pixels, **kw)['latents']
  np.testing.assert_array_equal(
      loaded.encode(images=pixels, **kw)['latents'], served)
  np.testing.assert_array_equal(loaded.encode(pixels, **kw)['latents'], served)


def test_export_saved_model_is_at_the_top_level():
  assert tfp_glow.export_saved_model is export.export_saved_model
  assert 'export_saved_model' in tfp_glow.__all__


def test_wrong_dtype_is_rejected(exported, loaded):
  _, _, labels, _ = exported
  kw = {'labels': tf.constant([0, 1], tf.int32)} if labels is not None else {}
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match='expected to be a float tensor but is a int32'):
    loaded.signatures['log_prob'](images=tf.zeros([2, 8, 8, 1], tf.int32),
                                  **kw)


def test_export_refuses_what_it_cannot_serve(tmp_path):
  with pytest.raises(TypeError, match='`model_or_glow` must be a tfp_glow'):
    export.export_saved_model(object(), str(tmp_path))
  fresh = tfp_glow.Glow(IMAGE_SHAPE, num_levels=2, num_steps=1,
                        hidden_channels=4)
  with pytest.raises(ValueError, match='has not been initialised'):
    export.export_saved_model(fresh, str(tmp_path))
