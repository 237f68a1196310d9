"""The `tfp-glow` command: export from a run directory, and its errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow import runs


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'tfp_glow.cli', *args],
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=8,
                       seed=3)
  glow.initialize(tf.random.stateless_uniform([16, 8, 8, 1], (1, 1), 0., 256.))
  path = str(tmp_path_factory.mktemp('run'))
  runs.save_glow(glow, path)
  return path, glow


def test_load_glow_restores_the_saved_weights(run_dir):
  path, glow = run_dir
  restored = runs.load_glow(path)
  x = tf.random.stateless_uniform([2, 8, 8, 1], (2, 2), 0., 256.)
  np.testing.assert_array_equal(restored.log_prob(x), glow.log_prob(x))


def test_export_command_writes_a_servable_model(run_dir, tmp_path):
  path, glow = run_dir
  out = str(tmp_path / 'served')
  result = _run('export', '--run-dir', path, '--output', out)
  assert result.returncode == 0, result.stderr
  assert 'Exported a SavedModel' in result.stdout
  loaded = tf.saved_model.load(out)
  x = tf.random.stateless_uniform([2, 8, 8, 1], (2, 2), 0., 256.)
  np.testing.assert_allclose(
      loaded.signatures['log_prob'](images=x)['log_prob'], glow.log_prob(x),
      rtol=1e-6)


@pytest.mark.parametrize('args,message', [
    (['export', '--run-dir', '/nonexistent/run', '--output', '/tmp/x'],
     'tfp-glow export: error: `run_dir` has no config.json'),
    (['export', '--run-dir', '.', '--output', '/proc/forbidden/model'],
     'tfp-glow export: error: --output: cannot write in /proc/forbidden'),
])
def test_export_errors_are_one_line(args, message):
  result = _run(*args)
  assert result.returncode == 2
  # TensorFlow's own start-up logs may come first; ours is the last line.
  assert result.stderr.strip().splitlines()[-1].startswith(message), (
      result.stderr)
  assert 'Traceback' not in result.stderr


def test_missing_checkpoint_is_reported(tmp_path, run_dir):
  path, _ = run_dir
  empty = tmp_path / 'no_ckpt'
  empty.mkdir()
  (empty / runs.CONFIG_FILE).write_text(open(
      os.path.join(path, runs.CONFIG_FILE)).read())
  result = _run('export', '--run-dir', str(empty), '--output',
                str(tmp_path / 'out'))
  assert result.returncode == 2
  assert 'has no checkpoint' in result.stderr
  assert 'Traceback' not in result.stderr


def test_help_explains_every_flag():
  result = _run('export', '--help')
  assert result.returncode == 0
  for flag in ('--run-dir', '--output'):
    assert flag in result.stdout
