"""Mixed precision: a bfloat16 Glow under Keras' `mixed_bfloat16` policy.

A GlowModel computes in its Glow's dtypes: `Glow(compute_dtype=tf.bfloat16)`
runs the coupling networks' hidden layers in bfloat16 while variables,
log-dets and the loss stay float32. Each test sets the global policy and
restores it, even on failure.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfp_glow.training import model as gm
from tfp_glow.training._keras import keras

SHAPE = (8, 8, 1)


@pytest.fixture
def mixed_bfloat16():
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)
  assert keras.mixed_precision.global_policy().name == previous.name


class _Record(keras.callbacks.Callback):
  """The variables when `fit` starts and the loss of the first batch."""

  def __init__(self):
    super().__init__()
    self.at_begin = None
    self.first_loss = None

  def on_train_begin(self, logs=None):
    self.at_begin = [v.numpy() for v in self.model.glow.variables]

  def on_train_batch_end(self, batch, logs=None):
    if self.first_loss is None:
      self.first_loss = float(logs['loss'])


def _float32_copy(small_glow, values):
  """A float32 Glow of the same configuration holding `values`."""
  glow = small_glow(hidden_channels=16)
  for variable, value in zip(glow.variables, values):
    variable.assign(value)
  return glow


def test_bfloat16_glow_trains_under_mixed_policy_close_to_float32(
    mixed_bfloat16, uint8_images, small_glow, compiled_model):
  images = uint8_images()
  glow = small_glow(hidden_channels=16, compute_dtype=tf.bfloat16)
  model = compiled_model(glow, warmup_steps=2)
  record = _Record()
  history = model.fit(tf.data.Dataset.from_tensor_slices(images).batch(16),
                      epochs=2, verbose=0, callbacks=[record])
  for key in ('loss', 'bits_per_dim'):
    assert np.all(np.isfinite(history.history[key])), key

  # Variables, log-density and the model's compute dtype stay float32.
  assert model.compute_dtype == 'float32'
  assert {v.dtype for v in glow.variables if v.dtype.is_floating} == {
      tf.float32}
  x = tf.constant(images[:8], tf.float32) + 0.5
  assert model(x).dtype == tf.float32
  seed = (4, 5)
  bpd = glow.bits_per_dim(images, seed=seed)
  assert bpd.dtype == tf.float32

  # Step 0: the loss fit reported for the first batch, against float32
  # arithmetic with the same weights (other dequantization noise).
  at_begin = _float32_copy(small_glow, record.at_begin)
  step0_float32 = float(tf.reduce_mean(at_begin.bits_per_dim(images[:16],
                                                             seed=seed)))
  assert abs(record.first_loss - step0_float32) < 0.05

  # Trained weights (non-zero coupling outputs): bfloat16 changes the
  # bits/dim, by little.
  trained = _float32_copy(small_glow, [v.numpy() for v in glow.variables])
  bpd_float32 = trained.bits_per_dim(images, seed=seed).numpy()
  difference = np.abs(bpd.numpy() - bpd_float32)
  assert 0.0 < difference.max() < 0.05


def test_mixed_policy_without_compute_dtype_warns_and_stays_float32(
    mixed_bfloat16, uint8_images, small_glow):
  glow = small_glow(hidden_channels=16)
  with pytest.warns(UserWarning, match=r"'mixed_bfloat16'.*compute_dtype="
                    r'tf\.bfloat16'):
    model = gm.GlowModel(glow)
  # No autocast of the inputs to bfloat16: exactly the Glow's log_prob.
  assert model.compute_dtype == 'float32'
  x = tf.constant(uint8_images(4), tf.float32) + tf.random.stateless_uniform(
      [4] + list(SHAPE), (1, 2))
  log_prob = model(x)
  assert log_prob.dtype == tf.float32
  np.testing.assert_array_equal(log_prob.numpy(), glow.log_prob(x).numpy())
  with pytest.raises(ValueError, match="`dtype` must be None or 'float32'"):
    gm.GlowModel(glow, dtype='mixed_bfloat16')
