"""What users of TFP lean on: the public class, eager equal to graph, caches.

Each check has a control showing it can fail: TFP's own code path, or an
object built so that the property does not hold.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

import tfp_glow
from tfp_glow import bijectors as gb
from tfp_glow.bijectors import _base

tfd = tfp.distributions
SMALL = dict(num_levels=2, num_steps=2, hidden_channels=8, seed=0)


def _pixels(n, seed=1):
  return tf.random.stateless_uniform([n, 8, 8, 1], (seed, 2), 0., 256.)


def _perturbed_glow(num_classes=None, scale=0.1):
  """An initialised Glow whose weights moved: N(0, scale^2) on every one."""
  glow = tfp_glow.Glow((8, 8, 1), num_classes=num_classes, **SMALL)
  labels = tf.range(32) % 3 if num_classes else None
  glow.initialize(_pixels(32), labels=labels)
  rng = np.random.default_rng(0)
  for v in glow.trainable_variables:
    v.assign_add(rng.normal(0.0, scale, v.shape).astype(np.float32))
  return glow


def test_glow_is_an_instance_of_tfps_public_class():
  glow = tfp_glow.Glow((8, 8, 1), **SMALL)
  assert isinstance(glow, tfd.TransformedDistribution)
  assert isinstance(glow, tfd.Distribution)
  assert issubclass(tfp_glow.Glow, tfd.TransformedDistribution)


def test_every_variable_is_tracked_through_modules_and_layers():
  """A module or tf_keras layer holding a Glow flattens it into its parts."""
  glow = tfp_glow.Glow((8, 8, 1), **SMALL)
  module = tf.Module()
  module.glow = glow
  layer = tf_keras.layers.Layer()
  layer.glow = glow
  expected = {id(v) for v in glow.variables}
  assert len(expected) > 40
  assert {id(v) for v in module.variables} == expected
  assert {id(v) for v in layer.variables} == expected
  assert {id(v) for v in tf.nest.flatten(glow, expand_composites=True)} == (
      expected)
  assert len(module.trainable_variables) == len(glow.trainable_variables)


def test_a_glow_is_captured_not_passed_to_tf_function():
  glow = tfp_glow.Glow((8, 8, 1), **SMALL)
  x = _pixels(2)
  with pytest.raises(TypeError, match=r'A Glow cannot be an argument of a '
                     r'`tf.function`: capture it instead'):
    tf.function(lambda g, t: g.log_prob(t))(glow, x)
  np.testing.assert_allclose(tf.function(glow.log_prob)(x), glow.log_prob(x),
                             rtol=1e-6)


@pytest.mark.parametrize('num_classes', [None, 3])
def test_eager_log_prob_equals_graph_on_a_perturbed_model(num_classes):
  glow = _perturbed_glow(num_classes)
  x = _pixels(6, seed=5)
  kwargs = {'labels': tf.range(6) % 3} if num_classes else {}
  eager = glow.log_prob(x, **kwargs)
  graph = tf.function(lambda t: glow.log_prob(t, **kwargs))(x)
  assert np.all(np.isfinite(eager))
  np.testing.assert_allclose(eager, graph, rtol=1e-5)
  by_hand = glow.distribution.log_prob(glow.encode(x, **kwargs)) + (
      glow.bijector.inverse_log_det_jacobian(
          x, 3, **({'top_prior': kwargs} if kwargs else {})))
  np.testing.assert_allclose(eager, by_hand, rtol=1e-5)
  np.testing.assert_allclose(
      glow.bits_per_dim(tf.floor(x), seed=(1, 2), **kwargs),
      tf.function(lambda t: glow.bits_per_dim(t, seed=(1, 2), **kwargs))(
          tf.floor(x)), rtol=1e-5)
  np.testing.assert_allclose(
      glow.encode(x, **kwargs),
      tf.function(lambda t: glow.encode(t, **kwargs))(x), rtol=1e-5,
      atol=1e-5)
  if num_classes:
    # Control: TFP's own log_prob asks for the forward log-det at f(x), which
    # in eager mode runs the sampling direction and overflows on this model.
    tfp_path = tfd.TransformedDistribution._log_prob(glow, x, **kwargs)  # pylint: disable=protected-access
    assert not np.all(np.isfinite(tfp_path))


def test_eager_log_prob_runs_the_inverse_direction_once(monkeypatch):
  """Each coupling (and split prior) runs once, inverse only, as in a graph."""
  glow = tfp_glow.Glow((8, 8, 1), **SMALL)
  glow.initialize(_pixels(8))
  calls = []
  for direction in ('forward', 'inverse'):
    original = getattr(gb.AffineCoupling, f'_augmented_{direction}')

    def counted(self, t, _original=original, _direction=direction):
      calls.append((_direction, id(self)))
      return _original(self, t)
    monkeypatch.setattr(gb.AffineCoupling, f'_augmented_{direction}', counted)
  glow.log_prob(_pixels(2))
  eager, calls[:] = list(calls), []
  tf.function(glow.log_prob)(_pixels(2))
  assert sorted(eager) == sorted(calls)
  assert len(eager) == len(set(eager)) == 5  # 4 couplings and 1 split.
  assert {direction for direction, _ in eager} == {'inverse'}


def test_eager_results_never_come_from_old_weights():
  glow = tfp_glow.Glow((8, 8, 1), **SMALL)
  glow.initialize(_pixels(8))
  x = _pixels(2)
  before_z, before_lp = glow.encode(x), glow.log_prob(x)
  for storage in _base._STORAGES:  # pylint: disable=protected-access
    eager_keys = [k for k in storage if k.alive and not any(
        tf.is_symbolic_tensor(t) for t in tf.nest.flatten(k()))]
    assert not eager_keys, 'an eager call left entries in the cache'
  for v in glow.trainable_variables:
    v.assign_add(0.01 * tf.ones_like(v))
  assert not np.allclose(glow.encode(x), before_z)
  assert not np.allclose(glow.log_prob(x), before_lp)


def test_an_eager_tensor_captured_by_two_traces():
  """The cache must not hand one trace's tensors to another."""
  glow = tfp_glow.Glow((8, 8, 1), **SMALL)
  glow.initialize(_pixels(8))
  x = _pixels(2)
  first = tf.function(lambda: glow.log_prob(x))()
  second = tf.function(lambda: 2.0 * glow.log_prob(x))()
  np.testing.assert_allclose(second, 2.0 * first, rtol=1e-6)
  # Also for a direct bijector call, which skips Glow's entry checks.
  flow = glow.bijector
  a = tf.function(lambda: flow.inverse_log_det_jacobian(x, 3))()
  b = tf.function(lambda: flow.inverse_log_det_jacobian(x, 3) + 1.0)()
  np.testing.assert_allclose(b, a + 1.0, rtol=1e-6)


def test_nested_functions_do_not_leak_tensors():
  glow = tfp_glow.Glow((8, 8, 1), **SMALL)
  glow.initialize(_pixels(8))

  @tf.function
  def inner(t):
    return glow.log_prob(t)

  @tf.function
  def outer(t):
    return inner(t) + glow.log_prob(t)

  x = _pixels(2)
  np.testing.assert_allclose(outer(x), 2.0 * glow.log_prob(x), rtol=1e-5)
