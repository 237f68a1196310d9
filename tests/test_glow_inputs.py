"""Bad data given to `Glow`'s methods: our error, naming the argument.

Static rules (shapes, dtypes, values known in Python) always raise; value rules
on tensors (range, NaN) raise under `validate_args=True`, TFP's convention.
"""

import warnings

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow

SMALL = dict(num_levels=2, num_steps=2, hidden_channels=8, seed=0)


@pytest.fixture(scope='module')
def glow():
  g = tfp_glow.Glow((8, 8, 1), **SMALL)
  g.initialize(tf.random.stateless_uniform([8, 8, 8, 1], (1, 2), 0., 256.))
  return g


@pytest.fixture(scope='module')
def conditional():
  g = tfp_glow.Glow((8, 8, 1), num_classes=3, **SMALL)
  g.initialize(tf.random.stateless_uniform([6, 8, 8, 1], (1, 2), 0., 256.),
               labels=tf.range(6) % 3)
  return g


def _x(shape=(2, 8, 8, 1)):
  return tf.random.stateless_uniform(shape, (3, 4), 0., 256.)


@pytest.mark.parametrize('shape', [(2, 8, 8, 3), (2, 16, 16, 1), (8, 8)])
@pytest.mark.parametrize('method', ['log_prob', 'encode', 'bits_per_dim'])
def test_images_of_the_wrong_shape(glow, method, shape):
  x = tf.zeros(shape)
  with pytest.raises(ValueError, match=(
      rf'Glow.{method}: `x` must have shape \[\.\.\., 8, 8, 1\]; got shape '
      rf'\[{", ".join(map(str, shape))}\]')):
    getattr(glow, method)(x)


def test_images_of_the_wrong_shape_inside_a_function(glow):
  spec = tf.TensorSpec([None, 8, 8, 3])
  with pytest.raises(ValueError, match=r'`x` must have shape \[\.\.\., 8, 8, 1'
                     r'\]; got shape \[\?, 8, 8, 3\]'):
    tf.function(glow.log_prob, input_signature=[spec]).get_concrete_function()


def test_initialize_needs_a_batch_of_images(glow):
  with pytest.raises(ValueError, match=r'Glow.initialize: `x` must have shape '
                     r'\[N, 8, 8, 1\]; got shape \[8, 8, 1\]'):
    glow.initialize(tf.zeros([8, 8, 1]))


def test_latents_of_the_wrong_shape(glow):
  with pytest.raises(ValueError, match=r'Glow.decode: `z` must have shape '
                     r'\[\.\.\., 2, 2, 16\]; got shape \[2, 4, 4, 4\]'):
    glow.decode(tf.zeros([2, 4, 4, 4]))


@pytest.mark.parametrize('labels,error,match', [
    ([5, 0], ValueError,
     r'`labels` must be class ids in \[0, 3\) \(num_classes=3\); got values '
     r'from 0 to 5'),
    ([-1, 0], ValueError, r'`labels` must be class ids in \[0, 3\)'),
    ([0.5, 1.0], TypeError, r'`labels` must be int class ids; got dtype float'),
    ([0, 1, 2], ValueError, r'`labels` must have one class id per example, '
     r'shape \[2\]; got shape \[3\]'),
    (None, ValueError, r'`labels` is required'),
])
def test_bad_labels(conditional, labels, error, match):
  with pytest.raises(error, match=r'Glow.log_prob: ' + match):
    conditional.log_prob(_x(), labels=labels)


def test_out_of_range_labels_as_a_tensor_under_validate_args():
  g = tfp_glow.Glow((8, 8, 1), num_classes=3, validate_args=True, **SMALL)
  log_prob = tf.function(  # Labels unknown while tracing: a value rule.
      lambda x, labels: g.log_prob(x, labels=labels),
      input_signature=[tf.TensorSpec([2, 8, 8, 1]), tf.TensorSpec([2], tf.int32)])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'`labels` must be class ids in \[0, 3\)'):
    log_prob(_x(), tf.constant([5, 0]))
  assert log_prob(_x(), tf.constant([2, 0])).shape == (2,)


def test_labels_for_sample_must_match_the_number_of_samples(conditional):
  with pytest.raises(ValueError, match=r'Glow.sample: `labels` must have one '
                     r'class id per example, shape \[4\]; got shape \[2\]'):
    conditional.sample(4, labels=[0, 1])
  assert conditional.sample(2, labels=[0, 1], seed=(1, 2)).shape == (2, 8, 8, 1)


@pytest.mark.parametrize('sample_shape', [-1, [2, -3]])
def test_negative_sample_shape(glow, sample_shape):
  with pytest.raises(ValueError, match=r'Glow.sample: `sample_shape` must be '
                     r'>= 0'):
    glow.sample(sample_shape)


@pytest.mark.parametrize('temperature', [-1.0, float('nan')])
def test_bad_temperature(glow, temperature):
  with pytest.raises(ValueError, match=r'Glow.sample: `temperature` must be '
                     r'finite and >= 0'):
    glow.sample(2, temperature=temperature)
  with pytest.raises(ValueError, match=r'Glow.decode: `temperature`'):
    glow.decode(tf.zeros([1, 2, 2, 16]), temperature=temperature)


def test_zero_temperature_samples_but_has_no_density(glow):
  assert np.all(np.isfinite(glow.sample(2, temperature=0.0, seed=(1, 1))))
  with pytest.raises(ValueError, match=r'Glow.log_prob: `temperature` must be '
                     r'finite and > 0'):
    glow.log_prob(_x(), temperature=0.0)


@pytest.fixture(scope='module')
def validating():
  g = tfp_glow.Glow((8, 8, 1), validate_args=True, **SMALL)
  g.initialize(tf.random.stateless_uniform([8, 8, 8, 1], (1, 2), 0., 256.))
  return g


@pytest.mark.parametrize('bad,match', [
    (np.nan, r'`x` must be finite; it holds NaN or inf'),
    (300.0, r'`x` must be dequantized pixels in \[0, 256\] \(num_bits=8\)'),
    (-1.0, r'`x` must be dequantized pixels in \[0, 256\]'),
])
def test_log_prob_value_rules_under_validate_args(validating, glow, bad, match):
  x = tf.tensor_scatter_nd_update(_x(), [[0, 1, 2, 0]], [bad])
  with pytest.raises(tf.errors.InvalidArgumentError, match=match):
    validating.log_prob(x)
  # Control: without validate_args the same call returns (undefined) numbers.
  assert glow.log_prob(x).shape == (2,)


@pytest.mark.parametrize('images,match', [
    (tf.random.stateless_uniform([2, 8, 8, 1], (1, 1)),
     r'`x` must hold integer pixel values in \[0, 256\) \(num_bits=8\); got '
     r'non-integer values from[\s\S]*For float images in \[0, 1\], pass '
     r'tf.cast\(tf.round\(images \* 255\), tf.uint8\)'),
    (tf.fill([2, 8, 8, 1], 1000), r'`x` must hold pixel values in \[0, 256\)'),
])
def test_bits_per_dim_value_rules_under_validate_args(validating, images, match):
  with pytest.raises(tf.errors.InvalidArgumentError, match=match):
    validating.bits_per_dim(images, seed=(1, 2))


def test_value_rules_pass_on_good_data(validating, glow):
  pixels = tf.floor(_x())
  np.testing.assert_allclose(validating.bits_per_dim(pixels, seed=(1, 2)),
                             validating.bits_per_dim(pixels, seed=(1, 2)))
  assert np.all(np.isfinite(validating.log_prob(_x())))


def test_initialize_on_a_constant_batch_warns_and_stays_finite():
  g = tfp_glow.Glow((8, 8, 1), **SMALL)
  constant = tf.fill([16, 8, 8, 1], 100.5)
  with pytest.warns(UserWarning, match=r"Glow.initialize: 4 ActNorm layers saw "
                    r"constant channels .* 'Glow/act_norm': channels \[0, 1, 2, "
                    r"3\] of 4 are constant"):
    g.initialize(constant)
  log_prob = g.log_prob(constant)
  assert np.all(np.isfinite(log_prob))
  # Unit scale for a constant channel: no 1e6 gain (+13.8 nats per pixel).
  # Before, log_prob here was +2227; a density of a pixel grid can't exceed
  # a few nats per dimension after an identity-like init.
  assert np.all(log_prob < 0.0), log_prob
  # Control: a varied batch warns nothing.
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    tfp_glow.Glow((8, 8, 1), **SMALL).initialize(_x((16, 8, 8, 1)))
