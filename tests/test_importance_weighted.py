"""The importance-weighted bits/dim bound of `Glow.bits_per_dim(num_samples=K)`."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests import bijector_checks
from tests.conftest import make_small_glow

SHAPE = (8, 8, 1)
SEED = (5, 6)


def _pixels(n=4):
  return tf.floor(tf.random.stateless_uniform((n,) + SHAPE, [1, 2], 0.0, 256.0))


def _moved_glow(**kwargs):
  """An initialised Glow whose zero-initialised layers moved (as trained)."""
  glow = make_small_glow(SHAPE, **kwargs)
  x = _pixels(16) + 0.5
  glow.initialize(x, context=tf.ones([16, 3]) if kwargs.get('context_shape')
                  else None)
  bijector_checks.perturb(glow.bijector, scale=0.05)
  return glow


def _single_sample_bits(glow, x, k, **kwargs):
  """`[K, N]` single-sample bits/dim over the K draws `bits_per_dim` uses."""
  u = tf.random.stateless_uniform([k] + list(x.shape),
                                  seed=tfp.random.sanitize_seed(SEED))
  log_p = tf.stack([glow.log_prob(x + u[i], **kwargs) for i in range(k)])
  return -log_p / (glow.num_dims * math.log(2.0))


def test_one_sample_is_the_single_sample_value_for_the_same_noise():
  glow, x = _moved_glow(), _pixels()
  u = tf.random.stateless_uniform(x.shape, seed=tfp.random.sanitize_seed(SEED))
  expected = -glow.log_prob(x + u) / (glow.num_dims * math.log(2.0))
  np.testing.assert_allclose(glow.bits_per_dim(x, seed=SEED, num_samples=1),
                             expected, rtol=1e-6)
  np.testing.assert_allclose(glow.bits_per_dim(x, seed=SEED), expected,
                             rtol=1e-6)


@pytest.mark.parametrize('kwargs', [{}, {'context_shape': (3,)},
                                    {'coupling': 'spline'}])
def test_the_bound_is_the_log_mean_exp_and_below_the_mean(kwargs):
  glow, x = _moved_glow(**kwargs), _pixels()
  call = {'context': tf.ones([4, 3])} if 'context_shape' in kwargs else {}
  single = _single_sample_bits(glow, x, 16, **call)
  bound = glow.bits_per_dim(x, seed=SEED, num_samples=16, **call)
  assert bound.shape == (4,)
  # Below the mean single-sample value over the same 16 draws (Jensen), by a
  # margin: the draws differ.
  mean = tf.reduce_mean(single, axis=0)
  assert bool(tf.reduce_all(bound < mean - 1e-6))
  assert float(tf.reduce_max(tf.math.reduce_std(single, axis=0))) > 1e-5
  # And exactly -logmeanexp of the draws, in bits.
  nats = -single * glow.num_dims * math.log(2.0)
  expected = -(tf.reduce_logsumexp(nats, axis=0) - math.log(16)) / (
      glow.num_dims * math.log(2.0))
  np.testing.assert_allclose(bound, expected, rtol=1e-5)


def test_the_log_mean_exp_is_stable_for_large_log_densities():
  """Values of log p around -1e5 nats: exp would underflow to 0 (log = -inf)."""
  glow = _moved_glow()
  for v in glow.bijector.trainable_variables:   # Shrink the top prior's scale.
    if 'log_scale' in v.name and 'top_prior' in v.name:
      v.assign(v - 6.0)
  x = _pixels()
  bound = glow.bits_per_dim(x, seed=SEED, num_samples=8)
  single = _single_sample_bits(glow, x, 8)
  assert float(tf.reduce_min(single)) * glow.num_dims * math.log(2.0) > 1e4
  assert bool(tf.reduce_all(tf.math.is_finite(bound)))
  assert bool(tf.reduce_all(bound <= tf.reduce_mean(single, axis=0)))
  assert bool(tf.reduce_all(bound >= tf.reduce_min(single, axis=0) - 1e-3))


@pytest.mark.parametrize('bad', [0, -1, 2.0, True])
def test_a_bad_num_samples_is_a_clear_error(bad):
  glow = make_small_glow(SHAPE)
  with pytest.raises((TypeError, ValueError), match='`num_samples`'):
    glow.bits_per_dim(_pixels(), num_samples=bad)


def test_the_saved_model_serves_the_importance_weighted_bound(tmp_path):
  import tfp_glow  # pylint: disable=g-import-not-at-top
  glow = _moved_glow()
  path = tfp_glow.export_saved_model(glow, str(tmp_path / 'sm'), num_samples=8)
  loaded = tf.saved_model.load(path)
  out = loaded.signatures['importance_weighted_bits_per_dim'](
      images=_pixels())
  assert int(out['num_samples']) == 8
  np.testing.assert_allclose(
      out['bits_per_dim'], glow.bits_per_dim(_pixels(), seed=(0, 0),
                                             num_samples=8), rtol=1e-5)
