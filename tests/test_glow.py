"""The Glow distribution: exact log_prob, sensible init, sampling, state."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_glow
from tfp_glow import bijectors as gb
from tests import bijector_checks

SMALL = dict(num_levels=2, num_steps=2, hidden_channels=8)


def _images(shape, seed=0, dtype=tf.float32, num_bits=8):
  """Integer-valued pixels with some spatial structure, as a float tensor."""
  noise = tf.random.stateless_uniform(shape, [seed, 1], dtype=tf.float64)
  smooth = tf.nn.avg_pool2d(noise, 3, 1, 'SAME')
  pixels = tf.floor(smooth * 2**num_bits * 0.999)
  return tf.cast(pixels, dtype)


def _dequantized(shape, seed=0, dtype=tf.float32):
  u = tf.random.stateless_uniform(shape, [seed, 2], dtype=dtype)
  return _images(shape, seed, dtype) + u


def _initialized_glow(image_shape=(8, 8, 1), seed=1, **kwargs):
  config = dict(SMALL, seed=seed)
  config.update(kwargs)
  glow = tfp_glow.Glow(image_shape, **config)
  labels = tf.range(32) % 3 if config.get('num_classes') else None
  glow.initialize(_dequantized((32,) + tuple(image_shape), 9, glow.dtype),
                  labels=labels)
  return glow


def test_log_prob_equals_base_plus_brute_force_jacobian():
  """log p(x) = log N(f(x)) + log|det df/dx|, f's Jacobian by GradientTape."""
  glow = _initialized_glow(dtype=tf.float64)
  bijector_checks.perturb(glow.bijector, scale=0.02)
  x = _dequantized((2, 8, 8, 1), dtype=tf.float64)
  flat = tf.reshape(x, [2, -1])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    z = glow.encode(tf.reshape(flat, x.shape))
    z_flat = tf.reshape(z, [2, -1])
  log_det = tf.linalg.slogdet(tape.batch_jacobian(z_flat, flat))[1]
  base = tf.reduce_sum(-0.5 * z_flat**2 - 0.5 * math.log(2 * math.pi), -1)
  np.testing.assert_allclose(glow.log_prob(x), base + log_det, rtol=1e-9)


def test_bits_per_dim_is_minus_log_prob_over_d_ln2():
  glow = _initialized_glow()
  pixels = _images((4, 8, 8, 1))
  bpd = glow.bits_per_dim(pixels, seed=(3, 4))
  u = tf.random.stateless_uniform(pixels.shape, (3, 4))
  expected = -glow.log_prob(pixels + u) / (64 * math.log(2))
  np.testing.assert_allclose(bpd, expected, rtol=1e-5)
  # Seeded dequantization is reproducible; another seed gives other noise.
  np.testing.assert_allclose(glow.bits_per_dim(pixels, seed=(3, 4)), bpd)
  assert not np.allclose(glow.bits_per_dim(pixels, seed=(3, 5)), bpd)


@pytest.mark.parametrize('image_shape', [(8, 8, 1), (8, 8, 3)])
def test_fresh_model_starts_near_num_bits(image_shape):
  """openai-style init: after ActNorm, a unit Gaussian per dimension.

  On i.i.d. uniform 8-bit pixels the best such model pays 8 bits plus the
  Gaussian's excess over the uniform's entropy, 0.5 * log2(2 pi e / 12) = 0.25
  bits; smooth images cost less.
  """
  glow = tfp_glow.Glow(image_shape, seed=0, **SMALL)
  uniform = tf.floor(tf.random.stateless_uniform(
      (256,) + image_shape, (5, 6), 0.0, 256.0))
  glow.initialize(uniform + tf.random.stateless_uniform(uniform.shape, (1, 1)))
  bpd = float(tf.reduce_mean(glow.bits_per_dim(uniform, seed=(0, 1))))
  assert 8.0 < bpd < 8.5, bpd
  smooth = _images((16,) + image_shape, seed=5)
  assert float(tf.reduce_mean(glow.bits_per_dim(smooth, seed=(0, 1)))) < bpd


def test_sample_encode_decode():
  glow = _initialized_glow()
  bijector_checks.perturb(glow.bijector, scale=0.02)
  for temperature in (0.5, 0.7, 1.0):
    x = glow.sample(3, temperature=temperature, seed=(4, 5))
    assert x.shape == (3, 8, 8, 1)
    assert bool(tf.reduce_all(tf.math.is_finite(x)))
  np.testing.assert_array_equal(glow.sample(2, seed=(4, 5)),
                                glow.sample(2, seed=(4, 5)))
  x = _dequantized((3, 8, 8, 1))
  z = glow.encode(x)
  assert z.shape == (3,) + tuple(glow.latent_shape)
  np.testing.assert_allclose(glow.decode(z), x, atol=1e-3)


def test_temperature_scales_every_latent():
  glow = _initialized_glow()
  bijector_checks.perturb(glow.bijector, scale=0.02)
  eps = glow.distribution.sample(2, seed=[1, 2])
  np.testing.assert_allclose(glow.decode(eps, temperature=0.5),
                             glow.bijector.forward(0.5 * eps), rtol=1e-5,
                             atol=1e-3)
  cold = glow.sample(64, temperature=0.1, seed=(7, 7))
  hot = glow.sample(64, temperature=1.0, seed=(7, 7))
  assert float(tf.math.reduce_std(cold)) < float(tf.math.reduce_std(hot))


def test_class_conditional_log_prob_and_sample():
  glow = _initialized_glow(num_classes=3)
  bijector_checks.perturb(glow.bijector, scale=0.05)
  x = _dequantized((3, 8, 8, 1))
  by_label = [glow.log_prob(x, labels=[k] * 3) for k in range(3)]
  assert not np.allclose(by_label[0], by_label[1])
  assert glow.sample(3, labels=[0, 1, 2], seed=(1, 1)).shape == (3, 8, 8, 1)
  with pytest.raises(ValueError, match='`labels` is required'):
    glow.log_prob(x)


def test_float64_model():
  glow = _initialized_glow(dtype=tf.float64)
  assert glow.dtype == tf.float64
  assert glow.log_prob(_dequantized((2, 8, 8, 1), dtype=tf.float64)).dtype == (
      tf.float64)
  assert all(v.dtype in (tf.float64, tf.int32, tf.bool) for v in glow.variables)


def test_initialize_sets_actnorm_statistics_and_is_idempotent():
  glow = tfp_glow.Glow((8, 8, 1), seed=0, **SMALL)
  assert not glow.is_initialized
  x = _dequantized((64, 8, 8, 1))
  glow.initialize(x)
  assert glow.is_initialized
  # The first ActNorm sees the squeezed, scaled data: unit statistics after it.
  first = glow.bijector.bijectors[:4]
  h = x
  for layer in first:
    h = layer.inverse(h)
  assert isinstance(first[-1], gb.ActNorm)
  np.testing.assert_allclose(tf.reduce_mean(h, [0, 1, 2]), 0.0, atol=1e-4)
  np.testing.assert_allclose(tf.math.reduce_std(h, [0, 1, 2]), 1.0, atol=1e-3)
  before = [v.numpy() for v in glow.trainable_variables]
  glow.initialize(3.0 * x + 7.0)
  after = [v.numpy() for v in glow.trainable_variables]
  for b, a in zip(before, after):
    np.testing.assert_array_equal(b, a)


def test_checkpoint_restores_into_a_model_built_with_another_seed():
  for permutation in ('lu', 'shuffle'):
    trained = _initialized_glow(seed=1, permutation=permutation)
    bijector_checks.perturb(trained.bijector, scale=0.02)
    path = tf.train.Checkpoint(glow=trained).save(
        f'{pytest.importorskip("tempfile").mkdtemp()}/ckpt')
    fresh = tfp_glow.Glow((8, 8, 1), seed=2, permutation=permutation, **SMALL)
    x = _dequantized((4, 8, 8, 1))
    assert not np.allclose(fresh.log_prob(x), trained.log_prob(x))
    tf.train.Checkpoint(glow=fresh).restore(path).assert_consumed()
    assert fresh.is_initialized
    np.testing.assert_array_equal(fresh.log_prob(x), trained.log_prob(x))
    # A restored model never re-runs its data init.
    fresh.initialize(x * 0.5)
    np.testing.assert_array_equal(fresh.log_prob(x), trained.log_prob(x))


def _op_types(concrete_fn):
  graph_def = concrete_fn.graph.as_graph_def()
  ops = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    ops |= {node.op for node in function.node_def}
  return ops


@pytest.mark.parametrize('permutation,expect_det', [('lu', False),
                                                    ('conv1x1', True)])
def test_training_graph_has_no_determinant_or_inverse_with_lu(permutation,
                                                               expect_det):
  glow = _initialized_glow(permutation=permutation)
  spec = tf.TensorSpec([None, 8, 8, 1], tf.float32)

  @tf.function(input_signature=[spec])
  def loss_and_grads(x):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(glow.log_prob(x))
    return loss, tape.gradient(loss, glow.trainable_variables)

  ops = _op_types(loss_and_grads.get_concrete_function())
  forbidden = {'MatrixDeterminant', 'LogMatrixDeterminant', 'MatrixInverse'}
  # conv1x1 is the control: it shows the check can see these ops.
  assert bool(ops & forbidden) == expect_det, ops & forbidden


def test_glow_is_a_transformed_distribution_over_a_standard_normal():
  glow = _initialized_glow()
  assert isinstance(glow.bijector, tfp.bijectors.Chain.__mro__[1])
  assert isinstance(glow.distribution, tfp.distributions.Sample)
  assert glow.event_shape == (8, 8, 1)
  m = tf.Module()
  m.glow = glow
  assert len(m.trainable_variables) == len(glow.trainable_variables) > 0


def test_bfloat16_coupling_networks_keep_log_prob_in_float32():
  glow32 = _initialized_glow(seed=4)
  mixed = _initialized_glow(seed=4, compute_dtype=tf.bfloat16)
  for source, target in zip(glow32.variables, mixed.variables):
    target.assign(source)
  bijector_checks.perturb(glow32.bijector, scale=0.02)
  bijector_checks.perturb(mixed.bijector, scale=0.02)
  x = _dequantized((4, 8, 8, 1))
  log_prob = mixed.log_prob(x)
  assert log_prob.dtype == tf.float32
  assert all(v.dtype != tf.bfloat16 for v in mixed.variables)
  # bfloat16 keeps 8 bits of mantissa: close to, but not equal to, float32.
  bpd32 = glow32.log_prob(x) / (-64 * math.log(2))
  bpd16 = log_prob / (-64 * math.log(2))
  np.testing.assert_allclose(bpd16, bpd32, atol=0.05)
  assert not np.array_equal(bpd16, bpd32)
  z = mixed.encode(x)
  np.testing.assert_allclose(mixed.decode(z), x, atol=1e-2)


def test_recompute_gradients_gives_identical_values_and_gradients():
  """Gradient checkpointing changes memory, not results."""
  plain = _initialized_glow(seed=5)
  checkpointed = _initialized_glow(seed=5, recompute_gradients=True)
  assert any(isinstance(b, gb.Recompute)
             for b in checkpointed.bijector.bijectors)
  assert len(plain.trainable_variables) == len(
      checkpointed.trainable_variables)
  for source, target in zip(plain.variables, checkpointed.variables):
    target.assign(source)
  bijector_checks.perturb(plain.bijector, scale=0.02)
  bijector_checks.perturb(checkpointed.bijector, scale=0.02)
  x = _dequantized((4, 8, 8, 1))

  def loss_and_grads(glow):
    @tf.function
    def run(x):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(glow.log_prob(x))
      return loss, tape.gradient(loss, glow.trainable_variables)
    return run(x)

  loss_a, grads_a = loss_and_grads(plain)
  loss_b, grads_b = loss_and_grads(checkpointed)
  np.testing.assert_allclose(loss_b, loss_a, rtol=1e-6)
  for a, b in zip(grads_a, grads_b):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(checkpointed.decode(checkpointed.encode(x)), x,
                             atol=1e-3)


def test_encode_top_is_the_prior_input_and_matches_the_flow_order():
  glow = _initialized_glow(num_classes=3)
  x = _dequantized((2, 8, 8, 1))
  top = glow.encode_top(x)
  assert top.shape == (2, 2, 2, glow.top_channels)
  # By hand: every layer before the top prior and the temperature.
  layers = list(glow.bijector.bijectors)
  assert [b.name for b in layers[-2:]] == ['top_prior', 'temperature']
  np.testing.assert_allclose(
      top, gb.Chain(layers[:-2]).inverse(x)[..., :glow.top_channels])
  # Control: the prior moves the latent, so encode() differs from it.
  bijector_checks.perturb(glow.bijector, scale=0.05)
  assert not np.allclose(glow.encode_top(x),
                         glow.encode(x, labels=[0, 1])[..., :glow.top_channels])


def test_is_initialized_reads_every_layer_flag():
  glow = _initialized_glow()
  assert glow.is_initialized
  flags = [m.initialized for m in glow.submodules
           if isinstance(getattr(m, 'initialized', None), tf.Variable)]
  assert len(flags) == 2 * 2 * 3  # Per step: ActNorm + 2 in the conditioner.
  flags[-1].assign(False)
  assert not glow.is_initialized
