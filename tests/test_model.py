"""Tests of `tfp_glow.model.GlowModel` under Keras 3 (the default Keras).

The tf_keras run of the same properties is tests/test_model_tf_keras.py; the
Keras flavour is fixed at import time, so it runs in its own process.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow.training import guard as guard_lib
from tfp_glow.training import noise
from tfp_glow.training import callbacks as glow_callbacks
from tfp_glow.training import model as gm
from tfp_glow.training._keras import IS_LEGACY
from tfp_glow.training._keras import keras

SHAPE = (8, 8, 1)


def _values(variables):
  return [np.array(v.numpy()) for v in variables]


def _actnorm_params(glow):
  return [v for v in glow.variables
          if v.name.endswith('act_norm/loc_and_log_scale:0')]


class _Snapshot(keras.callbacks.Callback):
  """Records the given variables when `fit` starts (after the auto init)."""

  def __init__(self, variables):
    super().__init__()
    self.variables = variables
    self.at_begin = []

  def on_train_begin(self, logs=None):
    self.at_begin.append(_values(self.variables))


def test_keras_flavour_is_keras3():
  assert not IS_LEGACY
  assert keras.__version__.startswith('3.')


def test_fit_lowers_bits_per_dim_and_trains_every_variable(uint8_images,
                                                           compiled_model):
  images = uint8_images(64)
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
  model = compiled_model(num_steps=2, warmup_steps=5)
  glow = model.glow
  assert len(model.trainable_weights) == len(glow.trainable_variables) == 36
  assert len(model.non_trainable_weights) == len(glow.non_trainable_variables)
  assert {id(v) for v in model.trainable_weights} == {
      id(v) for v in glow.trainable_variables}

  snapshot = _Snapshot(glow.trainable_variables)
  history = model.fit(dataset, epochs=2, validation_data=dataset, verbose=0,
                      callbacks=[snapshot])

  for key in ('loss', 'bits_per_dim', 'val_loss', 'val_bits_per_dim'):
    assert np.all(np.isfinite(history.history[key])), key
  bpd = history.history['bits_per_dim']
  assert bpd[1] < bpd[0]
  assert history.history['val_bits_per_dim'][1] < (
      history.history['val_bits_per_dim'][0])
  # Unconditional: the loss is the bits/dim.
  np.testing.assert_allclose(history.history['loss'], bpd, rtol=1e-6)
  result = model.evaluate(dataset, return_dict=True, verbose=0)
  assert set(result) == {'loss', 'bits_per_dim'}
  np.testing.assert_allclose(result['bits_per_dim'],
                             history.history['val_bits_per_dim'][-1],
                             rtol=1e-5)
  # Every trainable variable of the Glow was updated by the optimizer.
  after = _values(glow.trainable_variables)
  unchanged = [v.name for v, a, b in
               zip(glow.trainable_variables, snapshot.at_begin[0], after)
               if np.array_equal(a, b)]
  assert not unchanged
  assert int(model.optimizer.iterations.numpy()) == 8


def _shuffled(images):
  """A seeded shuffle: the same order in every fresh copy of the pipeline."""
  return tf.data.Dataset.from_tensor_slices(images).shuffle(
      len(images), seed=5).batch(16)


def _first_actnorm_output(glow, x):
  """The first ActNorm's output (inverse direction) on images `x`."""
  layers = glow.bijector.bijectors
  first = next(i for i, b in enumerate(layers)
               if isinstance(b, tfp_glow.bijectors.ActNorm))
  h = tfp_glow.bijectors.Chain(layers[:first]).inverse(x)
  return layers[first].inverse(h)


class _ActNormOutput(keras.callbacks.Callback):
  """When `fit` starts, the first ActNorm's output on dequantized `images`."""

  def __init__(self, images):
    super().__init__()
    self.images = images
    self.output = None

  def on_train_begin(self, logs=None):
    x = tf.constant(self.images, tf.float32) + 0.5  # Noise mean.
    self.output = _first_actnorm_output(self.model.glow, x).numpy()


def test_fit_runs_data_dependent_init_once_on_the_first_init_batch(
    uint8_images, small_glow, compiled_model):
  images = uint8_images(64)
  model = compiled_model(num_steps=1, warmup_steps=5, init_batch_size=24)
  assert not model.glow.is_initialized
  params = _actnorm_params(model.glow)
  snapshot = _Snapshot(params)
  init_batch = next(iter(_shuffled(images).unbatch().batch(24))).numpy()
  statistics = _ActNormOutput(init_batch)
  model.fit(_shuffled(images), epochs=1, steps_per_epoch=1, verbose=0,
            callbacks=[snapshot, statistics])
  assert model.glow.is_initialized

  # The init batch, normalised by the first ActNorm: per channel (4 after
  # the squeeze), mean 0 and std 1 (up to the noise, here replaced by 0.5).
  out = statistics.output
  assert out.shape == (24, 4, 4, 4)
  np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-2)
  np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-2)
  # Really set from data: pixels / 256 have std ~0.07, so log_scale ~ -2.6.
  assert np.any(np.concatenate([v.ravel() for v in snapshot.at_begin[0]])
                < -2.0)

  # Deterministic: a model built with the same seed, fitted on a fresh copy
  # of the pipeline, and one initialised by hand on the same first 24 images
  # get the same ActNorm parameters, bit for bit.
  twin = compiled_model(num_steps=1, warmup_steps=5, init_batch_size=24)
  twin_snapshot = _Snapshot(_actnorm_params(twin.glow))
  twin.fit(_shuffled(images), epochs=1, steps_per_epoch=1, verbose=0,
           callbacks=[twin_snapshot])
  by_hand = gm.GlowModel(small_glow(num_steps=1), init_batch_size=24)
  by_hand.initialize(init_batch)
  for got, twin_got, want in zip(snapshot.at_begin[0],
                                 twin_snapshot.at_begin[0],
                                 _values(_actnorm_params(by_hand.glow))):
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(twin_got, want)

  # A second fit starts from the trained values: no re-initialisation.
  trained = _values(params)
  model.fit(_shuffled(images), epochs=1, steps_per_epoch=1, verbose=0,
            callbacks=[snapshot])
  for got, want in zip(snapshot.at_begin[1], trained):
    np.testing.assert_array_equal(got, want)


def test_checkpoint_restore_gives_identical_log_prob_and_next_steps(
    tmp_path, uint8_images, compiled_model):
  images = uint8_images(64)
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
  model_a = compiled_model(seed=0, num_steps=2, warmup_steps=5)
  model_a.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
  path = tf.train.Checkpoint(model=model_a, optimizer=model_a.optimizer).write(
      str(tmp_path / 'ckpt'))

  # Another seed: every value, the permutations and flags come from the file.
  model_b = compiled_model(seed=1, num_steps=2, warmup_steps=5)
  model_b.optimizer.build(model_b.trainable_variables)
  tf.train.Checkpoint(model=model_b, optimizer=model_b.optimizer).read(
      path).assert_consumed()
  assert model_b.glow.is_initialized
  x = tf.constant(images[:8], tf.float32) + 0.5
  np.testing.assert_array_equal(model_a(x).numpy(), model_b(x).numpy())
  assert int(model_b.optimizer.iterations.numpy()) == 2

  # Resumed training continues exactly as the original run.
  history_a = model_a.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
  history_b = model_b.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
  assert history_a.history['loss'] == history_b.history['loss']
  for a, b in zip(_values(model_a.variables), _values(model_b.variables)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(_values(model_a.optimizer.variables),
                  _values(model_b.optimizer.variables)):
    np.testing.assert_array_equal(a, b)


def test_save_weights_round_trip(tmp_path, uint8_images, compiled_model):
  images = uint8_images(32)
  model_a = compiled_model(seed=0, num_steps=2, warmup_steps=5)
  model_a.fit(images, batch_size=16, epochs=1, verbose=0)
  path = str(tmp_path / 'glow.weights.h5')
  model_a.save_weights(path)
  model_b = compiled_model(seed=1, num_steps=2, warmup_steps=5)
  model_b.load_weights(path)
  assert model_b.glow.is_initialized
  x = tf.constant(images[:8], tf.float32) + 0.5
  np.testing.assert_array_equal(model_a(x).numpy(), model_b(x).numpy())


def test_nonfinite_loss_stops_training_without_update(uint8_images,
                                                       compiled_model):
  images = uint8_images(32)
  model = compiled_model(num_steps=2, warmup_steps=5)
  model.initialize(images)
  log_scale = [v for v in model.glow.trainable_variables
               if v.name.endswith('act_norm/loc_and_log_scale:0')][0]
  log_scale.assign(tf.fill(log_scale.shape, np.nan))
  before = _values(model.variables)
  with pytest.warns(RuntimeWarning, match='the loss is not finite'):
    history = model.fit(images, batch_size=16, epochs=3, verbose=0)
  assert len(history.history['loss']) == 1  # Stopped in the first epoch.
  for a, b in zip(before, _values(model.variables)):
    np.testing.assert_array_equal(a, b)
  assert int(model.optimizer.iterations.numpy()) == 0


class _NaNGradient(gm.GlowModel):
  """Adds `sqrt(|v - v|)` (= 0) to the loss: finite loss, NaN gradient of v."""

  def _loss(self, x, labels):
    loss, bpd = super()._loss(x, labels)
    v = self.trainable_variables[7]
    zero = tf.reduce_sum(tf.sqrt(tf.abs(v - tf.stop_gradient(v))))
    return loss + zero, bpd


def test_nonfinite_gradient_is_named_and_not_applied(uint8_images,
                                                     small_glow):
  images = uint8_images(32)
  model = _NaNGradient(small_glow(num_steps=2), init_batch_size=32)
  model.compile(gm.default_optimizer(1e-3, warmup_steps=5))
  model.initialize(images)
  before = _values(model.variables)
  guard = glow_callbacks.NonFiniteGuard()
  with pytest.warns(RuntimeWarning, match='gradient of variable'):
    model.fit(images, batch_size=16, epochs=2, verbose=0, callbacks=[guard])
  name = model.trainable_variables[7].name
  assert f'({name}, trainable variable 7)' in guard.message
  assert guard.message.startswith('Batch 0:')
  for a, b in zip(before, _values(model.variables)):
    np.testing.assert_array_equal(a, b)


_HUGE = np.float32(3e38)  # Finite, but two of them overflow a float32 sum.


@pytest.mark.parametrize('traced', [False, True])
@pytest.mark.parametrize('loss, grads, expected', [
    (1.0, [[1.0, 2.0], None, [3.0]], guard_lib.NO_ERROR),
    (np.nan, [[1.0], [2.0]], 0),
    (1.0, [[1.0], None, [2.0, np.inf]], 3),
    (1.0, [[1.0], [np.nan], [-np.inf]], 2),
    (1.0, [[np.inf], [-np.inf]], 1),         # inf - inf: the sum is NaN.
    # Control: finite values whose sum overflows are no error.
    (1.0, [[_HUGE, _HUGE], [_HUGE]], guard_lib.NO_ERROR),
])
def test_first_nonfinite_names_the_first_bad_value(loss, grads, expected,
                                                   traced):
  loss = tf.constant(loss, tf.float32)
  grads = [None if g is None else tf.constant(g, tf.float32) for g in grads]
  first = guard_lib.first_nonfinite
  if traced:
    first = tf.function(first)
  assert int(first(loss, grads)) == expected


def test_first_nonfinite_reads_indexed_slices():
  grad = tf.IndexedSlices(tf.constant([[1.0], [np.nan]]), tf.constant([0, 3]),
                          tf.constant([5, 1]))
  assert int(guard_lib.first_nonfinite(tf.constant(0.5), [grad])) == 1


def test_xla_step0_loss_equals_non_xla(uint8_images, compiled_model):
  images = uint8_images(16)
  losses = []
  for jit in (False, True):
    model = compiled_model(num_steps=1, learning_rate=1e-3, warmup_steps=5,
                           init_batch_size=16, jit_compile=jit)
    history = model.fit(images, batch_size=16, epochs=1, shuffle=False,
                        verbose=0)
    losses.append(history.history['loss'][0])
  np.testing.assert_allclose(losses[0], losses[1], atol=1e-4)


def test_high_learning_rate_sweep_stays_finite_for_10_seeds(small_glow,
                                                            compiled_model):
  """lr 1e-2 (10x the paper's) with warmup and the default clipping.

  The warmup is shortened to 10 steps so that 30 of the 40 steps of each run
  take the full rate. Binary images (0 or 255) are the hardest case: the
  likelihood can grow without bound, so scales are pushed hardest. The ten
  initialisations share one model (and one traced step): each run assigns a
  fresh Glow's initial values, ActNorm flags included, and the optimizer's
  initial state.
  """
  rng = np.random.default_rng(0)
  images = (rng.integers(0, 2, size=(64,) + SHAPE) * 255).astype(np.uint8)
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
  model = compiled_model(num_steps=1, learning_rate=1e-2, warmup_steps=10,
                         init_batch_size=64)
  assert model.optimizer.global_clipnorm == 5.0
  initial_optimizer = _values(model.optimizer.variables)
  for seed in range(10):
    fresh = small_glow(num_steps=1, seed=seed)
    for variable, value in zip(model.glow.variables, fresh.variables):
      variable.assign(value)
    for variable, value in zip(model.optimizer.variables, initial_optimizer):
      variable.assign(value)
    assert not model.glow.is_initialized
    history = model.fit(dataset, epochs=10, verbose=0)
    bpd = history.history['bits_per_dim']
    assert model.nonfinite_message() is None, (seed, model.nonfinite_message())
    assert int(model.optimizer.iterations.numpy()) == 40, seed
    assert np.all(np.isfinite(bpd)), (seed, bpd)
    assert bpd[-1] < bpd[0] - 0.2, (seed, bpd)  # And it trains.


def test_class_conditional_fit_uses_labels_and_classifier(uint8_images,
                                                          compiled_model):
  images = uint8_images(32)
  labels = np.arange(32) % 3
  model = compiled_model(num_steps=2, num_classes=3, warmup_steps=2)
  assert len(model.trainable_weights) == (
      len(model.glow.trainable_variables) + 2)  # + classifier kernel, bias.
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
  history = model.fit(dataset, epochs=1, verbose=0)
  loss, bpd = history.history['loss'][0], history.history['bits_per_dim'][0]
  assert np.isfinite(loss)
  # loss = bpd + 0.01 * cross-entropy in bits; at the zero-initialised
  # classifier the cross-entropy of the first step is log2(3).
  assert bpd < loss < bpd + 0.01 * np.log2(3.0) + 1e-3
  with pytest.raises(ValueError, match='class-conditional'):
    model.fit(images, batch_size=16, epochs=1, verbose=0)


def test_argument_errors(small_glow):
  with pytest.raises(TypeError, match='`glow` must be a tfp_glow.Glow'):
    gm.GlowModel('glow')
  with pytest.raises(ValueError, match='init_batch_size'):
    gm.GlowModel(small_glow(num_steps=2), init_batch_size=0)
  with pytest.raises(ValueError, match='weight_y'):
    gm.GlowModel(small_glow(num_steps=2), weight_y=-1.0)
  with pytest.raises(ValueError, match='`loss` must be None'):
    gm.GlowModel(small_glow(num_steps=2)).compile('adam', loss='mse')
  with pytest.raises(ValueError, match='`kind` must be one of'):
    gm.default_optimizer(kind='sgd')
  with pytest.raises(ValueError, match='warmup_steps'):
    gm.LinearWarmup(1e-3, warmup_steps=0)
  with pytest.raises(ValueError, match='learning_rate'):
    gm.LinearWarmup(-1.0, warmup_steps=10)


def test_default_optimizer_warms_up_per_step_and_clips():
  optimizer = gm.default_optimizer(1e-3, warmup_steps=100, clip_norm=2.0)
  schedule = optimizer.learning_rate if callable(
      optimizer.learning_rate) else optimizer._learning_rate
  assert isinstance(optimizer, keras.optimizers.Adam)
  assert optimizer.global_clipnorm == 2.0
  np.testing.assert_allclose(
      [float(schedule(s)) for s in (0, 49, 99, 1000)],
      [1e-5, 5e-4, 1e-3, 1e-3], rtol=1e-6)
  config = schedule.get_config()
  assert gm.LinearWarmup.from_config(config).get_config() == config


def _optimizer_trajectory(optimizer, steps=6, dtype=tf.float32):
  """The variables after `steps` updates of `optimizer` from a fixed start:
  a dense [3, 4] variable, one of `dtype` and one with sparse gradients."""
  rng = np.random.default_rng(0)
  variables = [tf.Variable(rng.normal(size=[3, 4]).astype(np.float32)),
               tf.Variable(rng.normal(size=[5]), dtype=dtype),
               tf.Variable(rng.normal(size=[6, 2]).astype(np.float32))]

  @tf.function
  def step(dense, dense64, rows):
    sparse = tf.IndexedSlices(rows, tf.constant([1, 4]), tf.constant([6, 2]))
    optimizer.apply_gradients(zip([dense, dense64, sparse], variables))

  for _ in range(steps):
    step(tf.constant(rng.normal(size=[3, 4]) * 3, tf.float32),
         tf.constant(rng.normal(size=[5]), dtype),
         tf.constant(rng.normal(size=[2, 2]), tf.float32))
  return [v.numpy() for v in variables] + [
      v.numpy() for v in optimizer.variables]


@pytest.mark.skipif(IS_LEGACY, reason='tf_keras keeps its stock optimizers')
@pytest.mark.parametrize('kind, options', [
    ('adam', {}), ('adam', dict(amsgrad=True)), ('adamax', {})])
@pytest.mark.parametrize('dtype', [tf.float32, tf.float64])
def test_fused_optimizers_equal_keras(kind, options, dtype):
  """FusedAdam/FusedAdamax take Keras' steps (warmup, clipping, sparse
  gradients, float64), in one kernel per dense variable."""
  from tfp_glow.training import optimizers  # pylint: disable=g-import-not-at-top
  fused = {'adam': optimizers.FusedAdam,
           'adamax': optimizers.FusedAdamax}[kind]
  stock = {'adam': keras.optimizers.Adam,
           'adamax': keras.optimizers.Adamax}[kind]
  # Keras clips float32 gradients only.
  clip = dict(global_clipnorm=5.0) if dtype == tf.float32 else {}
  kwargs = dict(learning_rate=gm.LinearWarmup(1e-2, warmup_steps=3),
                **clip, **options)
  ours = _optimizer_trajectory(fused(**kwargs), dtype=dtype)
  theirs = _optimizer_trajectory(stock(**kwargs), dtype=dtype)
  assert len(ours) == len(theirs)
  # TF's kernels take 1 - float32(0.999) = 0.00099998713 where Keras takes
  # 1 - 0.999 in Python: 1.3e-5 relative in v.
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=3e-5, atol=1e-7)
  # Control: the same check tells a different optimizer apart.
  other = _optimizer_trajectory(stock(**dict(kwargs, beta_1=0.8)),
                                dtype=dtype)
  assert not np.allclose(ours[0], other[0], rtol=3e-5, atol=1e-7)
  assert type(gm.default_optimizer(kind=kind)) is fused
  # Same slot variables as Keras': a stock optimizer's checkpoint restores.
  assert [v.name for v in fused(**kwargs).variables] == [
      v.name for v in stock(**kwargs).variables]


_MIRRORED_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfp_glow
    from tfp_glow.training import model as gm

    rng = np.random.default_rng(0)
    images = (rng.integers(0, 64, size=(64, 8, 8, 1)) + 96).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
    out = {}
    for n in (1, 2):
      strategy = tf.distribute.MirroredStrategy(
          [f'/cpu:{i}' for i in range(n)])
      with strategy.scope():
        glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=2,
                             hidden_channels=8, seed=0)
        model = gm.GlowModel(glow, init_batch_size=32)
        model.compile(gm.default_optimizer(1e-3, warmup_steps=5))
      step0 = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
      history = model.fit(dataset, epochs=2, verbose=0)
      replicas_equal = all(
          all(np.array_equal(c.numpy(), v.values[0].numpy())
              for c in v.values)
          for v in glow.variables if hasattr(v, 'values'))
      out[n] = dict(
          step0=step0.history['loss'][0],
          bpd=history.history['bits_per_dim'],
          mirrored=sum(hasattr(v, 'values') for v in glow.variables),
          num_variables=len(glow.variables),
          replicas_equal=replicas_equal)
    print('RESULT' + json.dumps(out))
''')


def test_mirrored_strategy_two_cpus_same_step0_loss_and_equal_replicas():
  proc = subprocess.run([sys.executable, '-c', _MIRRORED_SCRIPT],
                        capture_output=True, text=True, timeout=300,
                        check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  out = json.loads(lines[0][len('RESULT'):])
  one, two = out['1'], out['2']
  np.testing.assert_allclose(one['step0'], two['step0'], atol=1e-5)
  assert two['mirrored'] == two['num_variables']
  assert two['replicas_equal']
  for run in (one, two):
    assert np.all(np.isfinite(run['bpd']))
    assert run['bpd'][1] < run['bpd'][0]


def test_dequantization_noise_is_uniform_and_sliceable():
  shape = tf.constant([64, 8, 8, 1])
  u = noise.uniform(shape, (0, 5), 0, tf.float32).numpy()
  assert u.shape == (64, 8, 8, 1) and u.min() >= 0.0 and u.max() < 1.0
  assert abs(u.mean() - 0.5) < 0.02 and abs(u.std() - 12**-0.5) < 0.02
  # Replica 1 of 2 (offset = its slice's start) gets the second half.
  half = noise.uniform(tf.constant([32, 8, 8, 1]), (0, 5), 32 * 64, tf.float32)
  np.testing.assert_array_equal(half.numpy(), u[32:])
  other_step = noise.uniform(shape, (0, 6), 0, tf.float32).numpy()
  assert not np.allclose(u, other_step)
