"""SavedModel export, loaded in a process that cannot import tfp_glow or TFP."""

import json
import pathlib
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
''')


@pytest.fixture(scope='module', params=[None, 3], ids=['unconditional',
                                                      'conditional'])
def exported(request, tmp_path_factory):
  glow, pixels, labels = _trained_glow(request.param)
  path = str(tmp_path_factory.mktemp('export') / 'glow')
  export.export_saved_model(glow, path)
  return glow, pixels, labels, path


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
       str(tmp_path / 'out.npz')],
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


def test_signature_names_and_shapes(exported):
  glow, _, labels, path = exported
  loaded = tf.saved_model.load(path)
  assert sorted(loaded.signatures) == sorted(export.SIGNATURES)
  conditional = labels is not None
  for name, fn in loaded.signatures.items():
    inputs = fn.structured_input_signature[1]
    assert ('labels' in inputs) == conditional, name
  outputs = loaded.signatures['encode'].structured_outputs
  assert outputs['latents'].shape.as_list() == [None] + list(glow.latent_shape)
  outputs = loaded.signatures['sample'].structured_outputs
  assert outputs['images'].shape.as_list()[1:] == list(IMAGE_SHAPE)


@pytest.mark.parametrize('signature,argument,shape', [
    ('log_prob', 'images', [2, 9, 9, 1]),
    ('bits_per_dim', 'images', [8, 8, 1]),
    ('encode', 'images', [2, 8, 8, 3]),
    ('decode', 'latents', [2, 4, 4, 4]),
])
def test_wrong_shapes_name_the_signature(exported, signature, argument, shape):
  glow, _, labels, path = exported
  loaded = tf.saved_model.load(path)
  kw = {'labels': tf.constant([0, 1], tf.int32)} if labels is not None else {}
  expected = glow.image_shape if argument == 'images' else glow.latent_shape
  expected = ', '.join(str(d) for d in expected)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf'{signature}: `{argument}` must have shape '
                     rf'\[batch, {expected}\]'):
    loaded.signatures[signature](**{argument: tf.zeros(shape)}, **kw)


def test_wrong_dtype_is_rejected(exported):
  _, _, labels, path = exported
  loaded = tf.saved_model.load(path)
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
