"""A conditional Glow p(x | context): routing, dependence, broadcasting, errors.

Exactness of every conditional layer (float64 log-dets against GradientTape
Jacobians at a fixed context) is in tests/test_bijector_properties.py.
"""

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tests import bijector_checks
from tests.conftest import make_small_glow

SHAPE = (8, 8, 1)
CONTEXTS = {'vector': (5,), 'image': (4, 4, 2), 'larger_image': (12, 12, 1)}


def _x(n=4, seed=1):
  return tf.random.stateless_uniform((n,) + SHAPE, [seed, 2], 0.0, 256.0)


def _context(shape, n=4, seed=3):
  return tf.random.stateless_normal((n,) + tuple(shape), [seed, 4])


def _trained_like(context_shape, **kwargs):
  """An initialised conditional Glow whose zero-initialised layers moved.

  At init every layer reading the context outputs exactly zero (the model is
  the unconditional one); perturbing the variables stands in for training.
  """
  glow = make_small_glow(SHAPE, context_shape=context_shape, **kwargs)
  glow.initialize(_x(16), context=_context(context_shape, 16),
                  labels=tf.range(16) % 3 if kwargs.get('num_classes')
                  else None)
  bijector_checks.perturb(glow.bijector, scale=0.05)
  return glow


@pytest.mark.parametrize('kind', sorted(CONTEXTS))
def test_log_prob_depends_on_the_context(kind):
  glow = _trained_like(CONTEXTS[kind])
  x, c = _x(), _context(CONTEXTS[kind])
  other = _context(CONTEXTS[kind], seed=9)
  lp = glow.log_prob(x, context=c)
  assert lp.shape == (4,)
  assert bool(tf.reduce_all(tf.math.is_finite(lp)))
  assert float(tf.reduce_max(tf.abs(lp - glow.log_prob(x, context=other)))) > 1e-3


@pytest.mark.parametrize('kind', sorted(CONTEXTS))
def test_at_init_the_context_changes_nothing(kind):
  """Zero-initialised context paths: the model starts unconditional."""
  glow = make_small_glow(SHAPE, context_shape=CONTEXTS[kind])
  glow.initialize(_x(16), context=_context(CONTEXTS[kind], 16))
  x = _x()
  np.testing.assert_allclose(
      glow.log_prob(x, context=_context(CONTEXTS[kind])),
      glow.log_prob(x, context=_context(CONTEXTS[kind], seed=9)), rtol=1e-6)


def test_control_an_unconditional_glow_has_no_context_to_depend_on():
  """The control case: the dependence test would fail without a context."""
  glow = make_small_glow(SHAPE)
  glow.initialize(_x(16))
  bijector_checks.perturb(glow.bijector, scale=0.05)
  with pytest.raises(ValueError, match='built without `context_shape`'):
    glow.log_prob(_x(), context=_context((5,)))


@pytest.mark.parametrize('kind', sorted(CONTEXTS))
def test_one_context_serves_a_batch(kind):
  glow = _trained_like(CONTEXTS[kind])
  x, c = _x(), _context(CONTEXTS[kind], n=1)
  tiled = tf.tile(c, [4] + [1] * len(CONTEXTS[kind]))
  np.testing.assert_allclose(glow.log_prob(x, context=c),
                             glow.log_prob(x, context=tiled), rtol=1e-5)
  np.testing.assert_allclose(glow.log_prob(x, context=c[0]),
                             glow.log_prob(x, context=tiled), rtol=1e-5)


@pytest.mark.parametrize('kind', sorted(CONTEXTS))
def test_sample_with_a_context_of_batch_n_and_of_batch_1(kind):
  glow = _trained_like(CONTEXTS[kind])
  c = _context(CONTEXTS[kind], n=3)
  samples = glow.sample(3, context=c, seed=(1, 2), temperature=0.7)
  assert samples.shape == (3,) + SHAPE
  # The same latent decoded under one context for all equals tiling it.
  one = glow.sample(3, context=c[:1], seed=(1, 2), temperature=0.7)
  tiled = glow.sample(3, context=tf.tile(c[:1], [3] + [1] * len(
      CONTEXTS[kind])), seed=(1, 2), temperature=0.7)
  np.testing.assert_allclose(one, tiled, rtol=1e-5, atol=1e-3)
  # Different contexts give different images from the same latent.
  assert float(tf.reduce_max(tf.abs(samples - one))) > 1e-2
  grid = glow.sample([2, 2], context=c[:1], seed=(1, 2))
  assert grid.shape == (2, 2) + SHAPE


@pytest.mark.parametrize('kind', sorted(CONTEXTS))
def test_encode_decode_round_trip_and_eager_equals_graph(kind):
  glow = _trained_like(CONTEXTS[kind])
  x, c = _x(), _context(CONTEXTS[kind])
  z = glow.encode(x, context=c)
  np.testing.assert_allclose(glow.decode(z, context=c), x, atol=2e-2)

  @tf.function(input_signature=[tf.TensorSpec([None] + list(SHAPE)),
                                tf.TensorSpec([None] + list(CONTEXTS[kind]))])
  def log_prob(x, c):
    return glow.log_prob(x, context=c)

  np.testing.assert_allclose(log_prob(x, c), glow.log_prob(x, context=c),
                             rtol=1e-5)


def test_gradients_reach_the_raw_context_through_the_resizing():
  glow = _trained_like((12, 12, 1))
  x, c = _x(), _context((12, 12, 1))
  with tf.GradientTape() as tape:
    tape.watch(c)
    loss = -tf.reduce_sum(glow.log_prob(x, context=c))
  grad = tape.gradient(loss, c)
  assert grad is not None and bool(tf.reduce_all(tf.math.is_finite(grad)))
  assert float(tf.reduce_max(tf.abs(grad))) > 0.0


def test_context_and_labels_combine():
  glow = _trained_like((5,), num_classes=3)
  x, c = _x(), _context((5,))
  y = tf.constant([0, 1, 2, 0])
  lp = glow.log_prob(x, labels=y, context=c)
  assert float(tf.reduce_max(tf.abs(
      lp - glow.log_prob(x, labels=(y + 1) % 3, context=c)))) > 1e-4
  assert float(tf.reduce_max(tf.abs(
      lp - glow.log_prob(x, labels=y, context=c * 2.0)))) > 1e-4
  assert glow.sample(4, labels=y, context=c, seed=(3, 4)).shape == (4,) + SHAPE
  assert glow.encode_top(x, context=c).shape == (4, 2, 2, glow.top_channels)
  bpd = glow.bits_per_dim(tf.round(x), labels=y, context=c, seed=(1, 2))
  assert bpd.shape == (4,)


def test_config_round_trip_keeps_the_context_shape():
  glow = make_small_glow(SHAPE, context_shape=(4, 4, 2))
  config = glow.get_config()
  assert config['context_shape'] == [4, 4, 2]
  rebuilt = tfp_glow.Glow.from_config(config)
  assert rebuilt.context_shape == (4, 4, 2)
  assert [v.shape for v in rebuilt.variables] == [v.shape
                                                   for v in glow.variables]


# Each case: (context given, message that must name it).
MISUSE = {
    'missing': (None, r'`context` is required.*context_shape=\(5,\).*\[N, 5\]'),
    'wrong_event_shape': (tf.zeros([4, 3]), r'`context` must have shape \[N, 5\]'),
    'wrong_batch': (tf.zeros([3, 5]), r'`context` must have one context per '
                    r'example \(batch shape \[4\]\)'),
}


@pytest.mark.parametrize('case', sorted(MISUSE))
@pytest.mark.parametrize('method', ['log_prob', 'encode', 'bits_per_dim'])
def test_a_bad_context_is_a_clear_error(case, method):
  glow = make_small_glow(SHAPE, context_shape=(5,))
  context, message = MISUSE[case]
  with pytest.raises(ValueError, match=message):
    getattr(glow, method)(_x(), context=context)


@pytest.mark.parametrize('case', sorted(MISUSE))
def test_a_bad_context_of_sample_is_a_clear_error(case):
  glow = make_small_glow(SHAPE, context_shape=(5,))
  context, message = MISUSE[case]
  with pytest.raises(ValueError, match=message.replace('[4]', '[4]')):
    glow.sample(4, context=context, seed=(1, 2))


def test_a_string_context_is_a_type_error():
  glow = make_small_glow(SHAPE, context_shape=(2,))
  with pytest.raises(TypeError, match='`context` must be of a float dtype'):
    glow.log_prob(_x(), context=tf.constant([['a', 'b']] * 4))


def test_a_non_finite_context_fails_under_validate_args():
  glow = make_small_glow(SHAPE, context_shape=(2,), validate_args=True)
  glow.initialize(_x(16), context=_context((2,), 16))
  bad = tf.constant([[0.0, np.nan]] * 4)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='`context` must be finite'):
    glow.log_prob(_x(), context=bad)


@pytest.mark.parametrize('bad', [(0,), (4, 4), (4.0,), 'abc', (2, -1, 3)])
def test_a_bad_context_shape_is_a_clear_error(bad):
  with pytest.raises((TypeError, ValueError), match='`context_shape`'):
    make_small_glow(SHAPE, context_shape=bad)


def test_a_conditioner_fn_without_context_shape_is_a_clear_error():

  def plain_fn(in_channels, out_channels, *, dtype, seed):
    return tfp_glow.nn.ZeroConv2D(in_channels, out_channels, dtype)

  with pytest.raises(TypeError, match='`conditioner_fn` must accept the '
                     'keyword `context_shape`'):
    make_small_glow(SHAPE, context_shape=(5,), conditioner_fn=plain_fn)
