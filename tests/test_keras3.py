"""`GlowModel` in Keras 3 beyond its own `fit`: a user's model holding one
(`add_loss`, regularised layers beside it, `summary`, weights files), `.keras`
files reloaded in a fresh process, and `export`ed SavedModels served where
tfp_glow cannot be imported.

The tf_keras run of the same properties is in tests/test_model_tf_keras.py.
"""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow.training import model as gm
from tfp_glow import nn
from tfp_glow.training._keras import IS_LEGACY
from tfp_glow.training._keras import keras

SHAPE = (8, 8, 1)
NUM_DIMS = math.prod(SHAPE)


def _labels(n=32, num_classes=2):
  return np.arange(n) % num_classes


def _run(script, *args):
  """Runs `script` in a fresh Python; returns the JSON it printed."""
  proc = subprocess.run([sys.executable, '-c', script, *map(str, args)],
                        capture_output=True, text=True, timeout=300,
                        check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  return json.loads(lines[0][len('RESULT'):])


def test_keras_flavour_is_keras3():
  assert not IS_LEGACY and keras.__version__.startswith('3.')


class ClassifierWithDensity(keras.Model):
  """A classifier with a Glow density term added by `add_loss`, beside an
  L2-regularised head."""

  def __init__(self, glow, l2=1e-2, density_weight=0.1, **kwargs):
    super().__init__(**kwargs)
    self.density = gm.GlowModel(glow, name='density')
    self.head = keras.layers.Dense(
        2, kernel_regularizer=keras.regularizers.L2(l2), name='head',
        kernel_initializer=keras.initializers.GlorotUniform(seed=0))
    self.l2 = l2
    self.density_weight = density_weight

  def call(self, images):
    x = tf.cast(images, tf.float32)
    # Mid-bin dequantization, deterministic: `density` is the GlowModel.
    bits_per_dim = -self.density(x + 0.5) / (NUM_DIMS * math.log(2.0))
    self.add_loss(self.density_weight * tf.reduce_mean(bits_per_dim))
    return self.head(tf.reshape(x, [-1, NUM_DIMS]) / 255.0)


def _user_model(glow):
  model = ClassifierWithDensity(glow)
  model.compile(keras.optimizers.Adam(2e-3), loss=(
      keras.losses.SparseCategoricalCrossentropy(from_logits=True)))
  return model


def test_user_model_trains_with_add_loss_and_a_regularised_layer(
    uint8_images, small_glow):
  images, labels = uint8_images(), _labels()
  model = _user_model(small_glow(num_steps=2))
  model.density.initialize(images)   # By hand, before fit (as a user would).
  glow = model.density.glow
  assert {id(v) for v in glow.trainable_variables} <= {
      id(v) for v in model.trainable_variables}
  before = [v.numpy().copy() for v in model.trainable_variables]

  history = model.fit(images, labels, batch_size=16, epochs=3, verbose=0,
                      validation_data=(images, labels))
  for key in ('loss', 'val_loss'):
    assert np.all(np.isfinite(history.history[key])), key
  assert history.history['loss'][-1] < history.history['loss'][0]
  unchanged = [v.name for v, b in zip(model.trainable_variables, before)
               if np.array_equal(v.numpy(), b)]
  assert not unchanged   # The Glow and the head both trained.

  # The loss is the cross-entropy plus both added terms: the density term
  # and the head's L2 penalty, which Keras 3 reads from `regularizer`.
  logits = model(images)
  density_term, l2_term = model.losses
  np.testing.assert_allclose(
      float(l2_term), model.l2 * np.sum(model.head.kernel.numpy()**2),
      rtol=1e-5)
  assert float(density_term) > 0.1   # 0.1 * bits/dim.
  cross_entropy = keras.losses.SparseCategoricalCrossentropy(
      from_logits=True)(labels, logits)
  result = model.evaluate(images, labels, batch_size=32, verbose=0)
  np.testing.assert_allclose(
      result, float(cross_entropy) + float(density_term) + float(l2_term),
      rtol=1e-5)


def test_user_model_summary_counts_the_glow_parameters(uint8_images,
                                                       small_glow):
  model = _user_model(small_glow(num_steps=2))
  model(uint8_images(2))
  lines = []
  model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
  text = '\n'.join(lines)
  glow_params = sum(int(np.prod(v.shape))
                    for v in model.density.glow.variables)
  head_params = 64 * 2 + 2
  density_row = next(l for l in text.splitlines()
                     if 'density (GlowModel)' in l)
  assert f'{glow_params:,}' in density_row, text
  assert f'Total params: {glow_params + head_params:,}' in text, text


def test_user_model_weights_file_round_trip(tmp_path, uint8_images,
                                            small_glow):
  images, labels = uint8_images(), _labels()
  model = _user_model(small_glow(num_steps=2, seed=0))
  model.density.initialize(images)
  model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
  path = str(tmp_path / 'user.weights.h5')
  model.save_weights(path)

  # Other initial values everywhere.
  other = _user_model(small_glow(num_steps=2, seed=1))
  other(images[:2])             # Builds the head.
  other.optimizer.build(other.trainable_variables)
  assert not other.density.glow.is_initialized
  other.load_weights(path)
  assert other.density.glow.is_initialized
  assert int(other.optimizer.iterations.numpy()) == 2
  np.testing.assert_array_equal(other(images).numpy(), model(images).numpy())
  np.testing.assert_array_equal(float(other.losses[0]),
                                float(model.losses[0]))
  for a, b in zip(other.density.glow.variables, model.density.glow.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_config_round_trip_keeps_every_argument(small_glow):
  glow = tfp_glow.Glow(
      SHAPE, num_levels=2, num_steps=1, hidden_channels=8, coupling='additive',
      permutation='shuffle', learn_top=False, num_classes=4, num_bits=5,
      dtype=tf.float64, seed=3, recompute_gradients=True, name='my_glow')
  model = gm.GlowModel(glow, init_batch_size=8, noise_seed=7, weight_y=0.5,
                       name='mine')
  config = model.get_config()
  assert json.loads(json.dumps(config)) == config
  assert config['glow'] == dict(
      image_shape=[8, 8, 1], num_levels=2, num_steps=1, hidden_channels=8,
      coupling='additive', permutation='shuffle', learn_top=False,
      num_classes=4, context_shape=None, num_bits=5, dtype='float64',
      compute_dtype=None, seed=3,
      recompute_gradients=True, validate_args=False, name='my_glow')
  assert (config['init_batch_size'], config['noise_seed'],
          config['weight_y'], config['name']) == (8, 7, 0.5, 'mine')
  rebuilt = gm.GlowModel.from_config(config)
  assert rebuilt.get_config() == config
  assert rebuilt.glow.dtype == tf.float64
  assert [v.shape for v in rebuilt.glow.variables] == [
      v.shape for v in glow.variables]
  # Same seed: the same initial values.
  for a, b in zip(rebuilt.glow.variables, glow.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert keras.saving.serialize_keras_object(model)['registered_name'] == (
      'tfp_glow>GlowModel')

  mixed = gm.GlowModel(small_glow(num_steps=2, compute_dtype=tf.bfloat16))
  assert mixed.get_config()['glow']['compute_dtype'] == 'bfloat16'
  assert gm.GlowModel.from_config(mixed.get_config()).glow.parameters[
      'compute_dtype'] == 'bfloat16'


def test_a_glow_with_a_custom_conditioner_fn_has_no_config(tmp_path,
                                                           small_glow):
  glow = small_glow(num_steps=2, conditioner_fn=nn.glow_conditioner(8))
  model = gm.GlowModel(glow)
  model.compile()
  with pytest.raises(NotImplementedError, match='`conditioner_fn` must be '
                     'None to save'):
    model.get_config()
  path = tmp_path / 'custom.keras'
  with pytest.raises(NotImplementedError, match='conditioner_fn=functools'):
    model.save(str(path))
  assert not path.exists()
  model.save_weights(str(tmp_path / 'custom.weights.h5'))  # Still possible.


_LOAD_KERAS_FILE = textwrap.dedent('''
    import json, sys
    import numpy as np
    import keras
    import tensorflow as tf
    import tfp_glow  # Registers tfp_glow>GlowModel.

    path, data_path = sys.argv[1], sys.argv[2]
    data = np.load(data_path)
    model = keras.models.load_model(path)
    labels = data['labels'] if 'labels' in data else None
    x = tf.constant(data['x'])
    log_prob = model(x, labels=None if labels is None else labels[:8]).numpy()
    glow_variables = {str(i): v.numpy().tolist()
                      for i, v in enumerate(model.glow.variables)}
    iterations = int(model.optimizer.iterations.numpy())
    batch = (data['images'], labels) if labels is not None else (
        data['images'],)
    next_loss = model.fit(*batch, batch_size=16, epochs=1, shuffle=False,
                          verbose=0).history['loss']
    print('RESULT' + json.dumps(dict(
        type=type(model).__name__, config=model.get_config(),
        log_prob=log_prob.tolist(), glow_variables=glow_variables,
        initialized=model.glow.is_initialized, iterations=iterations,
        next_loss=next_loss)))
''')


@pytest.mark.parametrize('num_classes', [None, 3])
def test_keras_file_reloads_in_a_fresh_process(tmp_path, num_classes,
                                               uint8_images, small_glow):
  images = uint8_images()
  labels = _labels(num_classes=num_classes) if num_classes else None
  model = gm.GlowModel(small_glow(num_steps=2, num_classes=num_classes),
                       init_batch_size=16,
                       noise_seed=3, weight_y=0.5)
  model.compile(gm.default_optimizer(2e-3, warmup_steps=2))
  batch = (images, labels) if num_classes else (images,)
  model.fit(*batch, batch_size=16, epochs=1, verbose=0)
  path = str(tmp_path / 'glow.keras')
  model.save(path)
  x = images[:8].astype(np.float32) + 0.25
  data = dict(x=x, images=images[:16])
  if num_classes:
    data['labels'] = labels[:16]
  np.savez(tmp_path / 'data.npz', **data)
  expected_log_prob = model(x, labels=labels[:8] if num_classes else None)
  expected_variables = [v.numpy() for v in model.glow.variables]
  expected_config = model.get_config()
  next_batch = (images[:16], labels[:16]) if num_classes else (images[:16],)
  expected_next = model.fit(*next_batch, batch_size=16, epochs=1,
                            shuffle=False, verbose=0).history['loss']

  out = _run(_LOAD_KERAS_FILE, path, tmp_path / 'data.npz')
  assert out['type'] == 'GlowModel'
  assert out['config'] == expected_config
  np.testing.assert_array_equal(np.float32(out['log_prob']),
                                expected_log_prob.numpy())
  assert out['initialized']
  names = [v.name for v in model.glow.variables]
  assert any(n.endswith('act_norm/initialized:0') for n in names)
  assert any(n.endswith('act_norm/loc_and_log_scale:0') for n in names)
  for i, want in enumerate(expected_variables):
    np.testing.assert_array_equal(
        np.asarray(out['glow_variables'][str(i)], want.dtype), want,
        err_msg=names[i])
  # The optimizer's state came back too: the next step is the same.
  assert out['iterations'] == 2
  np.testing.assert_allclose(out['next_loss'], expected_next, rtol=1e-6)


_SERVE = textwrap.dedent('''
    import json, sys
    import numpy as np

    class _Blocked:  # Neither tfp_glow nor TFP may be imported here.
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tfp_glow', 'tensorflow_probability'):
          raise ImportError('blocked: ' + name)
    sys.meta_path.insert(0, _Blocked())
    import tensorflow as tf

    path, data_path = sys.argv[1], sys.argv[2]
    data = np.load(data_path)
    loaded = tf.saved_model.load(path)
    args = [tf.constant(data['images'], tf.float32)]
    if 'labels' in data:
      args.append(tf.constant(data['labels'], tf.int32))
    served = loaded.serve(*args).numpy()
    names = ['images', 'labels'][:len(args)]
    default = loaded.signatures['serving_default'](**dict(zip(names, args)))
    try:
      loaded.serve(args[0] / 255.0, *args[1:])
      error = None
    except tf.errors.InvalidArgumentError as e:
      error = str(e)
    print('RESULT' + json.dumps(dict(
        served=served.tolist(), default=list(default.values())[0].numpy(
            ).tolist(), error=error)))
''')


@pytest.mark.parametrize('num_classes', [None, 3])
def test_export_serves_bits_per_dim_without_tfp_glow(tmp_path, num_classes,
                                                     uint8_images,
                                                     compiled_model):
  images = uint8_images(16)
  labels = _labels(16, 3) if num_classes else None
  model = compiled_model(num_steps=2, num_classes=num_classes,
                         warmup_steps=2, init_batch_size=16)
  batch = (images, labels) if num_classes else (images,)
  model.fit(*batch, batch_size=16, epochs=1, verbose=0)
  path = str(tmp_path / 'saved_model')
  model.export(path)
  data = dict(images=images)
  if num_classes:
    data['labels'] = labels
  np.savez(tmp_path / 'data.npz', **data)

  out = _run(_SERVE, path, tmp_path / 'data.npz')
  served = np.asarray(out['served'])
  assert served.shape == (16,)
  np.testing.assert_array_equal(served, out['default'])
  # The bits/dim `evaluate` averages over the same batch (same noise).
  result = model.evaluate(*batch, batch_size=16, verbose=0, return_dict=True)
  np.testing.assert_allclose(served.mean(), result['bits_per_dim'], rtol=1e-5)
  assert np.all((served > 1.0) & (served < 12.0))
  # The data checks are part of the SavedModel.
  assert out['error'] and ('`images` must hold integer pixel values in '
                           '[0, 256)') in out['error']


def test_export_argument_errors(tmp_path, uint8_images, small_glow):
  model = gm.GlowModel(small_glow(num_steps=2))
  with pytest.raises(ValueError, match='has not been initialised'):
    model.export(str(tmp_path / 'a'))
  model.initialize(uint8_images())
  with pytest.raises(ValueError, match="`format` must be one of "
                     "'tf_saved_model'; got 'onnx'"):
    model.export(str(tmp_path / 'b'), format='onnx')
