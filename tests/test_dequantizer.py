"""The variational dequantizer q(u | x): support, exact density, gradients."""

import math

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tests import bijector_checks
from tests.conftest import make_small_glow
from tfp_glow.dequantizer import VariationalDequantizer

SHAPE = (4, 4, 1)
F64 = tf.float64


def _images(n=3, shape=SHAPE, seed=1):
  return tf.floor(tf.random.stateless_uniform((n,) + shape, [seed, 2], 0.0,
                                              256.0))


def _dequantizer(dtype=tf.float32, shape=SHAPE, scale=0.05):
  """An initialised q whose zero-initialised layers moved (as trained)."""
  q = VariationalDequantizer(shape, num_steps=2, hidden_channels=8,
                             dtype=dtype, seed=0)
  q.initialize(_images(16, shape), seed=(1, 2))
  bijector_checks.perturb(q.bijector, scale=scale)
  return q


def test_samples_lie_in_the_unit_interval_even_for_extreme_logits():
  q = _dequantizer()
  u, log_q = q.sample_and_log_prob(_images(), seed=(3, 4))
  assert bool(tf.reduce_all((u >= 0.0) & (u < 1.0)))
  assert bool(tf.reduce_all(tf.math.is_finite(log_q)))
  # Logits far beyond float32's sigmoid range (> 17) round to 1.0 without
  # the clamp: shift the last ActNorm before the logits by +-100 (the 1x1
  # convolution after it rotates the shift, so one sign gives some logit
  # above 100).
  largest = []
  for sign in (1.0, -1.0):
    huge = _dequantizer()
    inner_flow = huge.bijector.bijectors[-1].bijector
    last_actnorm = [b for b in inner_flow.bijectors
                    if isinstance(b, tfp_glow.bijectors.ActNorm)][-1]
    last_actnorm.loc_and_log_scale[0].assign(last_actnorm.loc + sign * 100.0)
    u, log_q = huge.sample_and_log_prob(_images(), seed=(3, 4))
    largest.append(float(tf.reduce_max(u)))
    assert bool(tf.reduce_all((u >= 0.0) & (u < 1.0)))
    assert bool(tf.reduce_all(tf.math.is_finite(log_q)))
  assert max(largest) > 0.999


def test_log_density_against_the_float64_jacobian():
  q = _dequantizer(F64)
  images = _images()
  eps = tf.random.stateless_normal([3] + q.latent_shape.as_list(), [5, 6],
                                   dtype=F64)
  u, log_q = q.from_noise(eps, images)
  flat = tf.reshape(eps, [3, -1])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    out = tf.reshape(q.from_noise(tf.reshape(flat, eps.shape), images)[0],
                     [3, -1])
  log_det = tf.linalg.slogdet(tape.batch_jacobian(out, flat))[1]
  normal = -0.5 * tf.reduce_sum(flat**2, axis=1) - 0.5 * flat.shape[1] * math.log(
      2 * math.pi)
  np.testing.assert_allclose(log_q, normal - log_det, rtol=1e-9, atol=1e-8)
  # The density direction gives the same value.
  np.testing.assert_allclose(q.log_prob(u, images), log_q, rtol=1e-9,
                             atol=1e-7)


def test_q_depends_on_x_and_gradients_reach_every_variable():
  q = _dequantizer()
  images = _images()
  u_a, _ = q.sample_and_log_prob(images, seed=(3, 4))
  u_b, _ = q.sample_and_log_prob(_images(seed=7), seed=(3, 4))
  assert float(tf.reduce_max(tf.abs(u_a - u_b))) > 1e-3
  with tf.GradientTape() as tape:
    u, log_q = q.sample_and_log_prob(images, seed=(3, 4))
    loss = tf.reduce_sum(u**2) + tf.reduce_sum(log_q)
  grads = tape.gradient(loss, q.trainable_variables)
  missing = [v.name for v, g in zip(q.trainable_variables, grads) if g is None]
  assert not missing, missing


def test_at_init_q_is_close_to_uniform():
  """ActNorm on the logits of U[0.01, 0.99): q starts near the uniform."""
  q = VariationalDequantizer(SHAPE, num_steps=2, hidden_channels=8, seed=0)
  q.initialize(_images(64), seed=(1, 2))
  u, log_q = q.sample_and_log_prob(_images(64), seed=(3, 4))
  assert abs(float(tf.reduce_mean(u)) - 0.5) < 0.05
  # The uniform's log-density is 0; q's per-dimension mean is close to it.
  assert abs(float(tf.reduce_mean(log_q)) / 16) < 0.3


def test_the_bound_with_k_samples_is_below_the_mean_of_single_ones():
  glow = make_small_glow(SHAPE, num_levels=1)
  glow.initialize(_images(16) + 0.5)
  bijector_checks.perturb(glow.bijector, scale=0.05)
  q = _dequantizer()
  images = _images(4)
  single = q.bits_per_dim(glow, images, seed=(1, 2))
  assert single.shape == (4,)
  bound = q.bits_per_dim(glow, images, num_samples=8, seed=(1, 2))
  draws = tf.reshape(q.bits_per_dim(glow, tf.tile(images, [8, 1, 1, 1]),
                                    seed=(1, 2)), [8, 4])
  assert bool(tf.reduce_all(bound < tf.reduce_mean(draws, axis=0)))


def test_checkpoint_round_trip_is_exact(tmp_path):
  q = _dequantizer()
  images = _images()
  u, log_q = q.sample_and_log_prob(images, seed=(3, 4))
  path = tf.train.Checkpoint(q=q).write(str(tmp_path / 'q'))
  other = VariationalDequantizer(SHAPE, num_steps=2, hidden_channels=8, seed=5)
  tf.train.Checkpoint(q=other).read(path).assert_consumed()
  assert other.is_initialized
  u2, log_q2 = other.sample_and_log_prob(images, seed=(3, 4))
  np.testing.assert_array_equal(u, u2)
  np.testing.assert_array_equal(log_q, log_q2)


def test_config_round_trip():
  q = VariationalDequantizer(SHAPE, num_steps=3, hidden_channels=8, seed=2)
  again = VariationalDequantizer.from_config(q.get_config())
  assert again.get_config() == q.get_config()


@pytest.mark.parametrize('bad, name', [
    ({'image_shape': (5, 4, 1)}, 'image_shape'),
    ({'num_steps': 0}, 'num_steps'),
    ({'hidden_channels': 2.5}, 'hidden_channels'),
    ({'num_bits': 0}, 'num_bits'),
])
def test_bad_arguments_are_clear_errors(bad, name):
  kwargs = dict(image_shape=SHAPE)
  kwargs.update(bad)
  with pytest.raises((TypeError, ValueError), match=f'`{name}`'):
    VariationalDequantizer(kwargs.pop('image_shape'), **kwargs)


def test_images_of_the_wrong_shape_are_a_clear_error():
  q = VariationalDequantizer(SHAPE, num_steps=1, hidden_channels=8)
  with pytest.raises(ValueError, match=r'`images` must have shape \[N, 4, 4, 1\]'):
    q.sample_and_log_prob(tf.zeros([2, 8, 8, 1]))
