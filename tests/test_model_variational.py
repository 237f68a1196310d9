"""GlowModel with variational dequantization, and its importance-weighted bound."""

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tests.conftest import make_small_glow
from tfp_glow.dequantizer import VariationalDequantizer
from tfp_glow.training._keras import keras

SHAPE = (8, 8, 1)


def _images(n=64, seed=1):
  pixels = tf.random.stateless_uniform((n,) + SHAPE, [seed, 2], 0.0, 256.0)
  # Smooth digits-like images: a ramp plus noise, so that there is something
  # to learn beyond the uniform density.
  ramp = tf.reshape(tf.linspace(0.0, 200.0, 8), [1, 1, 8, 1])
  return tf.cast(tf.clip_by_value(ramp + 0.2 * pixels, 0, 255), tf.uint8)


def _model(**kwargs):
  glow = make_small_glow(SHAPE, num_steps=2)
  model = tfp_glow.GlowModel(glow, dequantization='variational',
                             init_batch_size=32, **kwargs)
  model.compile(tfp_glow.training.default_optimizer(3e-3, warmup_steps=3))
  return model


def _dataset():
  return tf.data.Dataset.from_tensor_slices(_images()).batch(16)


@pytest.fixture(scope='module')
def trained():
  model = _model()
  before = [v.numpy() for v in model.dequantizer.trainable_variables]
  history = model.fit(_dataset(), epochs=4, verbose=0)
  return model, before, history.history


def test_fit_lowers_the_bound_and_trains_q(trained):
  model, before, history = trained
  assert history['bits_per_dim'][-1] < history['bits_per_dim'][0] - 0.05
  moved = [float(np.max(np.abs(v.numpy() - b))) for v, b in
           zip(model.dequantizer.trainable_variables, before)]
  assert sum(m > 0 for m in moved) > len(moved) // 2, moved
  assert model.dequantizer.is_initialized


def test_the_loss_is_the_variational_bound(trained):
  """evaluate's bits/dim: -(log p(x + u) - log q(u | x)) / (D ln 2)."""
  model, _, _ = trained
  images = _images(16)
  logs = model.evaluate(tf.data.Dataset.from_tensor_slices(images).batch(16),
                        return_dict=True, verbose=0)
  # The same noise as evaluate's, computed by hand from q and the Glow.
  from tfp_glow.training import dequantization  # pylint: disable=g-import-not-at-top
  eps = dequantization.global_batch_normal(model.dequantizer, images,
                                           (0, -2), tf.float32)
  u, log_q = model.dequantizer.from_noise(eps, images)
  log_p = model.glow.log_prob(tf.cast(images, tf.float32) + u)
  by_hand = -(log_p - log_q) / (64 * np.log(2.0))
  np.testing.assert_allclose(logs['bits_per_dim'], float(tf.reduce_mean(
      by_hand)), rtol=1e-5)
  # The control: the uniform bound of the same Glow is another number.
  uniform = float(tf.reduce_mean(model.glow.bits_per_dim(images, seed=(0, 0))))
  assert abs(uniform - logs['bits_per_dim']) > 1e-3


def test_importance_weighting_tightens_the_bound(trained):
  model, _, _ = trained
  images = _images(32, seed=5)
  single = model.bits_per_dim(images, seed=(3, 4))
  weighted = model.bits_per_dim(images, num_samples=16, seed=(3, 4))
  assert single.shape == weighted.shape == (32,)
  assert float(tf.reduce_mean(weighted)) < float(tf.reduce_mean(single))


def test_checkpoint_round_trip_is_exact(trained, tmp_path):
  model, _, _ = trained
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / 'ckpt'))
  other = _model()
  tf.train.Checkpoint(model=other).read(path).assert_existing_objects_matched()
  images = _images(8)
  np.testing.assert_array_equal(model.bits_per_dim(images),
                                other.bits_per_dim(images))


def test_keras_file_round_trip(trained, tmp_path):
  model, _, _ = trained
  model.save(str(tmp_path / 'm.keras'))
  loaded = keras.models.load_model(str(tmp_path / 'm.keras'))
  assert loaded.dequantization == 'variational'
  images = _images(8)
  np.testing.assert_array_equal(model.bits_per_dim(images),
                                loaded.bits_per_dim(images))


def test_saved_model_serves_the_variational_bound(trained, tmp_path):
  model, _, _ = trained
  path = tfp_glow.export_saved_model(model, str(tmp_path / 'sm'))
  loaded = tf.saved_model.load(path)
  images = tf.cast(_images(8), tf.float32)
  served = loaded.signatures['bits_per_dim'](images=images)['bits_per_dim']
  np.testing.assert_allclose(served, model.dequantizer.bits_per_dim(
      model.glow, images, seed=(0, 0)), rtol=1e-5)
  assert float(tf.reduce_max(tf.abs(
      served - model.glow.bits_per_dim(images, seed=(0, 0))))) > 1e-3
  model.export(str(tmp_path / 'serve'))
  archive = tf.saved_model.load(str(tmp_path / 'serve'))  # Keep it alive.
  np.testing.assert_allclose(archive.serve(images), model._serve(images),  # pylint: disable=protected-access
                             rtol=1e-5)


def test_a_uniform_model_reports_the_uniform_bounds():
  glow = make_small_glow(SHAPE)
  model = tfp_glow.GlowModel(glow, init_batch_size=16)
  model.initialize(_images(16))
  assert model.dequantizer is None and model.dequantization == 'uniform'
  images = _images(4)
  np.testing.assert_allclose(
      model.bits_per_dim(images, num_samples=4, seed=(1, 2)),
      glow.bits_per_dim(images, num_samples=4, seed=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize('kwargs, error, match', [
    ({'dequantization': 'flow'}, ValueError, '`dequantization` must be one of'),
    ({'dequantizer': VariationalDequantizer(SHAPE, num_steps=1)}, ValueError,
     "`dequantizer` is for dequantization='variational'"),
    ({'dequantization': 'variational', 'dequantizer': 'q'}, TypeError,
     '`dequantizer` must be a'),
    ({'dequantization': 'variational',
      'dequantizer': VariationalDequantizer((4, 4, 1), num_steps=1)},
     ValueError, "`dequantizer` must be built for the Glow's image_shape"),
])
def test_bad_dequantization_arguments_are_clear_errors(kwargs, error, match):
  with pytest.raises(error, match=match):
    tfp_glow.GlowModel(make_small_glow(SHAPE), **kwargs)


def test_a_bad_num_samples_is_a_clear_error():
  model = tfp_glow.GlowModel(make_small_glow(SHAPE), init_batch_size=16)
  with pytest.raises(ValueError, match='`num_samples` must be >= 1'):
    model.bits_per_dim(_images(4), num_samples=0)


def test_q_noise_is_finite_at_the_ends_of_the_uniform_grid():
  # The counter uniform's top value 1 - 2**-24: in float32 its cell midpoint
  # rounds to 1.0 and the inverse CDF to +inf (a NaN loss in training).
  from tfp_glow.training import dequantization  # pylint: disable=g-import-not-at-top
  grid = tf.constant([0.0, 2.0**-24, 0.5, 1.0 - 2.0**-23, 1.0 - 2.0**-24])
  eps = dequantization.normal_of_grid_uniform(grid, tf.float32)
  assert bool(tf.reduce_all(tf.math.is_finite(eps)))
  np.testing.assert_allclose(eps[0], -eps[-1], rtol=1e-6)
  assert 5.0 < float(eps[-1]) < 5.6 and float(eps[2]) > 0.0
  float32_midpoint = tf.math.ndtri(grid[-1] + 2.0**-25)
  assert not bool(tf.math.is_finite(float32_midpoint))  # What it fixes.
