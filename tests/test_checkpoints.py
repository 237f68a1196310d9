"""Checkpoints restore strictly, tfp_glow 0.1's layout included.

tests/data/v01_run was written by tfp_glow 0.1 (tests/data/make_v01_run.py,
at commit ae8dc7a): separate ActNorm `loc`/`log_scale`, LU `lower`/`upper`/
`log_s` and zero-convolution `bias`/`logs` variables, every one moved off its
initial value, saved with their optimizer as a training checkpoint is, and
what 0.1 computed of fixed images.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow import checkpoints
from tfp_glow import runs

V01_RUN = os.path.join(os.path.dirname(__file__), 'data', 'v01_run')


def _expected():
  return np.load(os.path.join(V01_RUN, 'expected.npz'))


def _v01_checkpoint():
  return os.path.join(V01_RUN, runs.CHECKPOINT_DIR, 'ckpt-1')


def _fresh_glow():
  return tfp_glow.Glow.from_config(
      {k: v for k, v in runs._read_config(V01_RUN).items()  # pylint: disable=protected-access
       if k not in ('training', 'dequantizer')})


def test_a_v01_run_loads_with_the_numbers_it_had():
  expected = _expected()
  glow = runs.load_glow(V01_RUN)
  dequantizer = runs.load_dequantizer(V01_RUN)
  np.testing.assert_allclose(
      glow.log_prob(expected['images'] + expected['u']).numpy(),
      expected['log_prob'], rtol=1e-6)
  np.testing.assert_allclose(
      dequantizer.log_prob(expected['u'], expected['images']).numpy(),
      expected['log_q'], rtol=1e-5)
  names = [v.name for v in glow.trainable_variables]
  assert not any(n.endswith(('/lower:0', '/log_s:0', '/logs:0')) for n in names)


def test_control_a_plain_partial_restore_of_v01_is_silently_wrong():
  """What `load_glow` did before: the merged variables stay at init."""
  expected = _expected()
  glow = _fresh_glow()
  tf.train.Checkpoint(glow=glow).read(_v01_checkpoint()).expect_partial()
  log_prob = glow.log_prob(expected['images'] + expected['u']).numpy()
  assert np.abs(log_prob - expected['log_prob']).max() > 1.0


def _layer_keys(path):
  return [key for key, _ in tf.train.list_variables(path)
          if key.startswith('glow/') and '/_initialized/' not in key
          and '/initialized/' not in key and '/_permutation/' not in key
          and '/_sign/' not in key]


def test_layouts_are_told_apart_with_or_without_an_optimizer(tmp_path):
  # With an optimizer, a variable's key is its path through the optimizer
  # (`optimizer/_trainable_variables/3`): no key names a layer's attribute,
  # so telling the layouts apart has to read the object graph.
  assert not _layer_keys(_v01_checkpoint())
  assert checkpoints.is_v01_checkpoint(_v01_checkpoint())
  glow = runs.load_glow(V01_RUN)
  path = tf.train.Checkpoint(glow=glow).write(str(tmp_path / 'ckpt'))
  assert _layer_keys(path)
  assert not checkpoints.is_v01_checkpoint(path)
  optimizer = tfp_glow.training.default_optimizer(1e-3)
  optimizer.build(glow.trainable_variables)
  trained = tf.train.Checkpoint(glow=glow, optimizer=optimizer).write(
      str(tmp_path / 'trained'))
  assert not _layer_keys(trained)
  assert not checkpoints.is_v01_checkpoint(trained)
  again = _fresh_glow()
  assert checkpoints.restore(path, glow=again) == 'current'
  for a, b in zip(glow.variables, again.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)


def test_a_checkpoint_of_another_model_raises_naming_it(tmp_path):
  other = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=3,
                        hidden_channels=8, seed=0)
  path = tf.train.Checkpoint(glow=other).write(str(tmp_path / 'ckpt'))
  with pytest.raises(ValueError, match='does not match glow.*another config'):
    checkpoints.restore(path, glow=_fresh_glow())
  run_dir = tmp_path / 'run'
  shutil.copytree(V01_RUN, run_dir)
  tf.train.CheckpointManager(  # Newest: another model's.
      tf.train.Checkpoint(glow=other), str(run_dir / runs.CHECKPOINT_DIR),
      max_to_keep=None, checkpoint_name='ckpt').save(checkpoint_number=2)
  with pytest.raises(ValueError, match='ckpt-2.*does not match glow'):
    runs.load_glow(str(run_dir))


def test_a_failed_v01_restore_leaves_the_layers_whole():
  wrong = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=3,
                        hidden_channels=8, seed=0)
  before = [v.name for v in wrong.variables]
  with pytest.raises(ValueError, match="tfp_glow 0.1's variable layout"):
    checkpoints.restore(_v01_checkpoint(), glow=wrong)
  assert [v.name for v in wrong.variables] == before
  x = tf.fill([2, 8, 8, 1], 100.5)
  assert bool(tf.reduce_all(tf.math.is_finite(wrong.log_prob(x))))


def test_training_cannot_resume_from_v01(tmp_path):
  with pytest.raises(checkpoints.V01CheckpointError,
                     match='cannot resume.*optimizer state'):
    checkpoints.check_resumable(_v01_checkpoint())
  current = runs.save_glow(_fresh_glow(), str(tmp_path))
  checkpoints.check_resumable(current)  # No error.


def test_a_v01_keras_file_loads_with_the_numbers_it_had():
  import keras  # pylint: disable=g-import-not-at-top
  expected = _expected()
  model = keras.models.load_model(os.path.join(V01_RUN, 'model.keras'))
  np.testing.assert_allclose(
      model.glow.log_prob(expected['images'] + expected['u']).numpy(),
      expected['log_prob'], rtol=1e-6)
  np.testing.assert_allclose(
      model.dequantizer.log_prob(expected['u'], expected['images']).numpy(),
      expected['log_q'], rtol=1e-5)


def test_a_keras_file_of_another_configuration_raises(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  model = keras.models.load_model(os.path.join(V01_RUN, 'model.keras'))
  other = tfp_glow.GlowModel(
      tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=8),
      dequantization='variational')
  path = str(tmp_path / 'other.weights.h5')
  other.save_weights(path)
  with pytest.raises(ValueError, match=r'holds \d+ Glow variables; this '
                     r'model has \d+ .*tfp_glow 0.1'):
    model.load_weights(path)


def test_a_checkpoint_without_the_configs_dequantizer_says_so(tmp_path):
  run_dir = tmp_path / 'run'
  shutil.copytree(V01_RUN, run_dir)
  assert checkpoints.holds(_v01_checkpoint(), 'dequantizer')
  tf.train.CheckpointManager(  # Newest: the Glow alone.
      tf.train.Checkpoint(glow=runs.load_glow(V01_RUN)),
      str(run_dir / runs.CHECKPOINT_DIR), max_to_keep=None,
      checkpoint_name='ckpt').save(checkpoint_number=2)
  with pytest.raises(FileNotFoundError, match='ckpt-2 holds no `dequantizer`'):
    runs.load_dequantizer(str(run_dir))
