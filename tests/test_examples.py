"""Every example script runs in its smoke setting (TFDS data mocked)."""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfp_glow import runs

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples')


def _example(name):
  """The module examples/<name>.py (the folder is not a package)."""
  spec = importlib.util.spec_from_file_location(
      f'example_{name}', os.path.join(EXAMPLES, f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _png(path):
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


@pytest.fixture(scope='module')
def offline_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('offline'))
  result = _example('train').main(['--smoke', '--run-dir', run_dir])
  return run_dir, result


def test_train_smoke_then_resume(offline_run, capsys):
  run_dir, result = offline_run
  assert result.epochs == 1 and np.isfinite(result.evaluation.bits_per_dim)
  resumed = _example('train').main(['--resume', '--run-dir', run_dir,
                                    '--epochs', '2', '--grid-scale', '1'])
  assert resumed.epochs == 2
  # Epoch 1's grid at the default x4; the resumed epoch's at --grid-scale 1.
  samples = os.path.join(run_dir, 'samples')
  assert _png(os.path.join(samples, 'epoch_001_t0.8.png')).shape == (
      (8 * 29 - 1) * 4, (8 * 29 - 1) * 4, 1)
  assert _png(os.path.join(samples, 'epoch_002_t0.8.png')).shape == (
      8 * 29 - 1, 8 * 29 - 1, 1)
  assert runs.read_evaluation(run_dir)['epochs'] == 2
  assert 'held-out bits/dim' in capsys.readouterr().out


def test_sample(offline_run, tmp_path):
  run_dir, _ = offline_run
  path = _example('sample').main(['--run-dir', run_dir, '--temperatures',
                                  '0.5,1.0', '--num', '3', '--output',
                                  str(tmp_path / 's.png')])
  assert _png(path).shape == ((2 * 29 - 1) * 4, (3 * 29 - 1) * 4, 1)  # x4
  path = _example('sample').main(['--run-dir', run_dir, '--temperatures',
                                  '0.5,1.0', '--num', '3', '--output',
                                  str(tmp_path / 's1.png'), '--scale', '1'])
  assert _png(path).shape == (2 * 29 - 1, 3 * 29 - 1, 1)


def test_interpolate(offline_run):
  run_dir, _ = offline_run
  path = _example('interpolate').main(['--run-dir', run_dir, '--pairs', '2',
                                       '--steps', '5'])
  assert path == os.path.join(run_dir, 'samples', 'interpolation.png')
  assert _png(path).shape == ((2 * 29 - 1) * 4, (5 * 29 - 1) * 4, 1)


def test_evaluate_matches_the_training_figure(offline_run):
  run_dir, _ = offline_run
  evaluation = _example('evaluate').main(['--run-dir', run_dir])
  with open(os.path.join(run_dir, runs.EVALUATION_FILE)) as f:
    stored = json.load(f)
  # Same checkpoint, same images, same dequantization seed.
  assert evaluation.bits_per_dim == pytest.approx(stored['bits_per_dim'],
                                                  rel=1e-6)
  assert evaluation.num_images == stored['num_images'] == 16


def test_class_samples_on_mock_cifar10(tmp_path):
  run_dir = str(tmp_path)
  with tfds.testing.mock_data(num_examples=16):
    _example('train').main(['--preset', 'cifar10_conditional', '--smoke',
                            '--run-dir', run_dir])
  path = _example('class_samples').main(['--run-dir', run_dir, '--num', '2'])
  assert _png(path).shape == ((10 * 33 - 1) * 3, (2 * 33 - 1) * 3, 3)  # x3


def test_manipulate_on_mock_celeb_a(tmp_path):
  run_dir = str(tmp_path)
  with tfds.testing.mock_data(num_examples=16):
    _example('train').main(['--preset', 'celeba64', '--smoke', '--run-dir',
                            run_dir])
    path = _example('manipulate').main([
        '--run-dir', run_dir, '--attribute', 'Eyeglasses', '--strengths',
        '-1', '0', '1', '--num-images', '2', '--num-direction-images', '16'])
  assert path.endswith('Eyeglasses.png')
  assert _png(path).shape == ((2 * 65 - 1) * 2, (3 * 65 - 1) * 2, 3)  # x2
