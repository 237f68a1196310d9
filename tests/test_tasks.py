"""tfp_glow.tasks: training runs, evaluation, sampling and latent edits."""

import csv
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfp_glow
from tfp_glow import data
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow import tasks
from tfp_glow.tasks import run as run_module

# float32: these tests compare code paths (graph and eager, one batch and K
# draws) to 1e-6; with bfloat16 networks (compute_dtype='auto' on a CPU with
# bf16 units) fused and unfused convolutions round apart by ~1e-5.
# Uniform noise: the variational runs have their own fixture.
SMOKE = presets.smoke(presets.get('mnist_offline', compute_dtype='float32',
                                  dequantization='uniform'))


def _png(path):
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


def _weights(glow):
  return [v.numpy() for v in glow.trainable_variables]


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('smoke'))
  return run_dir, tasks.train(run_dir, SMOKE, verbose=0)


def test_train_writes_a_complete_run_directory(smoke_run):
  run_dir, result = smoke_run
  files = set(os.listdir(run_dir))
  assert {'config.json', 'checkpoints', 'metrics.csv', 'logs', 'samples',
          'evaluation.json'} <= files
  with open(os.path.join(run_dir, 'config.json')) as f:
    config = json.load(f)
  assert presets.Config.from_dict(config['training']) == SMOKE
  with open(os.path.join(run_dir, 'metrics.csv')) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 1
  assert {'epoch', 'loss', 'bits_per_dim', 'val_bits_per_dim'} <= set(rows[0])
  assert float(rows[0]['val_bits_per_dim']) == pytest.approx(
      result.evaluation.bits_per_dim)
  events = [f for _, _, fs in os.walk(os.path.join(run_dir, 'logs'))
            for f in fs if f.startswith('events.out.tfevents')]
  assert events
  assert runs.read_evaluation(run_dir)['bits_per_dim'] == pytest.approx(
      result.evaluation.bits_per_dim)
  assert result.evaluation.num_images == SMOKE.eval_examples
  # 8 samples at each of the 4 temperatures, 28x28 tiles with 1-pixel gaps,
  # upscaled x4 by default (tiles 112 pixels high).
  assert _png(result.samples).shape == ((4 * 29 - 1) * 4, (8 * 29 - 1) * 4, 1)
  assert _png(os.path.join(run_dir, 'samples', 'epoch_001_t0.8.png')).shape == (
      (8 * 29 - 1) * 4, (8 * 29 - 1) * 4, 1)


def test_evaluate_is_the_mean_and_standard_error_of_bits_per_dim():
  glow = tasks.build_glow(SMOKE)
  dataset = data.load('mnist_offline', 'test', batch_size=10, num_examples=30)
  glow.initialize(tf.cast(next(iter(dataset)), tf.float32) + 0.5)
  values = np.concatenate([
      glow.bits_per_dim(x, seed=tf.constant([7, i])).numpy()
      for i, x in enumerate(dataset)])
  e = tasks.evaluate(glow, dataset, seed=7)
  assert e.num_images == 30
  assert e.bits_per_dim == pytest.approx(values.mean(), rel=1e-5)
  assert e.standard_error == pytest.approx(
      values.std(ddof=1) / np.sqrt(30), rel=1e-4)


def test_resuming_replays_an_uninterrupted_run(tmp_path):
  # (A cosine schedule spans the run's epochs: resuming with a new total
  # changes it, so this run keeps the rate constant.)
  config = presets.replace(SMOKE, epochs=2, flip=True, lr_schedule='constant')
  whole, part = str(tmp_path / 'whole'), str(tmp_path / 'part')
  tasks.train(whole, config, verbose=0, grid_scale=1)
  tasks.train(part, presets.replace(config, epochs=1), verbose=0)
  resumed = tasks.train(part, resume=True, epochs=2, verbose=0)
  assert resumed.epochs == 2
  for a, b in zip(_weights(runs.load_glow(whole)),
                  _weights(runs.load_glow(part))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with open(os.path.join(part, 'metrics.csv')) as f:
    assert [r['epoch'] for r in csv.DictReader(f)] == ['0', '1']
  # grid_scale=1: every grid of the run at one pixel per pixel.
  for name, rows in (('epoch_001_t0.8.png', 8), ('epoch_002_t0.8.png', 8),
                     ('temperatures.png', 4)):
    assert _png(os.path.join(whole, 'samples', name)).shape == (
        rows * 29 - 1, 8 * 29 - 1, 1), name


def test_train_refuses_to_overwrite_and_to_resume_nothing(smoke_run, tmp_path):
  run_dir, _ = smoke_run
  with pytest.raises(FileExistsError, match='already holds checkpoints'):
    tasks.train(run_dir, SMOKE)
  with pytest.raises(FileNotFoundError, match='no checkpoint to resume'):
    tasks.train(str(tmp_path), resume=True)
  # A bad grid scale stops before any training, not after the first epoch.
  fresh = str(tmp_path / 'fresh')
  with pytest.raises(ValueError,
                     match='`grid_scale` must be >= 1; got grid_scale=0'):
    tasks.train(fresh, SMOKE, grid_scale=0)
  assert not runs.has_checkpoint(fresh)


def test_temperature_grid_rows_share_their_noise(smoke_run, tmp_path):
  run_dir, _ = smoke_run
  grid = _png(tasks.sample_grid(run_dir, str(tmp_path / 's.png'), (0.0, 1.0),
                                num_per_temperature=3))
  assert grid.shape == ((2 * 29 - 1) * 4, (3 * 29 - 1) * 4, 1)  # x4
  tiles = [grid[r * 116:r * 116 + 112, c * 116:c * 116 + 112]
           for r in range(2) for c in range(3)]
  # Temperature 0 decodes the zero latent: one image, three times.
  np.testing.assert_array_equal(tiles[0], tiles[1])
  np.testing.assert_array_equal(tiles[0], tiles[2])
  assert not np.array_equal(tiles[3], tiles[4])


def test_sample_grid_scale(smoke_run, tmp_path):
  run_dir, _ = smoke_run
  glow = runs.load_glow(run_dir)
  one = _png(tasks.sample_grid(glow, str(tmp_path / '1.png'), (0.5, 1.0),
                               num_per_temperature=3, scale=1))
  assert one.shape == (2 * 29 - 1, 3 * 29 - 1, 1)
  three = _png(tasks.sample_grid(glow, str(tmp_path / '3.png'), (0.5, 1.0),
                                 num_per_temperature=3, scale=3))
  # The same samples, each pixel a 3x3 block.
  np.testing.assert_array_equal(three, np.repeat(np.repeat(one, 3, 0), 3, 1))
  path = str(tmp_path / 'bad.png')
  with pytest.raises(ValueError, match='`scale` must be >= 1; got scale=0'):
    tasks.sample_grid(glow, path, scale=0)
  assert not os.path.exists(path)


def test_interpolation_ends_reconstruct_the_images(smoke_run):
  run_dir, _ = smoke_run
  glow = runs.load_glow(run_dir)
  x, _ = data.offline.arrays('test')
  start, end = x[:2], x[2:4]
  out = tasks.interpolate(glow, start, end, num_steps=5).numpy()
  assert out.shape == (2, 5, 28, 28, 1)
  np.testing.assert_array_equal(np.floor(out[:, 0] + 1e-3), start)
  np.testing.assert_array_equal(np.floor(out[:, -1] + 1e-3), end)
  assert not np.array_equal(np.floor(out[:, 2]), start)


def test_interpolation_grid(smoke_run, tmp_path):
  run_dir, _ = smoke_run
  path = tasks.interpolation_grid(run_dir, str(tmp_path / 'i.png'),
                                  num_pairs=3, num_steps=4)
  assert _png(path).shape == ((3 * 29 - 1) * 4, (4 * 29 - 1) * 4, 1)
  path = tasks.interpolation_grid(run_dir, str(tmp_path / 'i2.png'),
                                  num_pairs=3, num_steps=4, scale=2)
  assert _png(path).shape == ((3 * 29 - 1) * 2, (4 * 29 - 1) * 2, 1)


def test_attribute_direction_and_manipulation(smoke_run):
  run_dir, _ = smoke_run
  glow = runs.load_glow(run_dir)
  x, labels = data.offline.arrays('test')
  pick = np.arange(0, 500, 12)[:40]  # The split is sorted by class.
  x, has = x[pick], (labels[pick] < 5).astype(int)
  direction = tasks.attribute_direction(glow, x, has, batch_size=16)
  z = glow.encode(tf.cast(x, tf.float32) + 0.5).numpy()
  np.testing.assert_allclose(
      direction, z[has == 1].mean(0) - z[has == 0].mean(0), atol=1e-4)
  out = tasks.manipulate(glow, x[:3], direction, strengths=(0.0, 2.0)).numpy()
  np.testing.assert_array_equal(np.floor(out[:, 0] + 1e-3), x[:3])
  assert not np.array_equal(np.floor(out[:, 1]), x[:3])
  with pytest.raises(ValueError, match='some but not all'):
    tasks.attribute_direction(glow, x, np.ones(40))


def test_manipulation_grid_on_mock_celeb_a(tmp_path):
  config = presets.smoke(presets.get('celeba64'))
  with tfds.testing.mock_data(num_examples=16):
    tasks.train(str(tmp_path), config, verbose=0)
    path = tasks.manipulation_grid(str(tmp_path), str(tmp_path / 'smile.png'),
                                   'Smiling', strengths=(-1.0, 0.0, 1.0),
                                   num_images=2, num_direction_images=16)
    one = tasks.manipulation_grid(str(tmp_path), str(tmp_path / 'one.png'),
                                  'Smiling', strengths=(-1.0, 0.0, 1.0),
                                  num_images=2, num_direction_images=16,
                                  scale=1)
  assert _png(path).shape == ((2 * 65 - 1) * 2, (3 * 65 - 1) * 2, 3)  # x2
  assert _png(one).shape == (2 * 65 - 1, 3 * 65 - 1, 3)


def test_class_samples_need_and_use_a_conditional_model(smoke_run, tmp_path):
  run_dir, _ = smoke_run
  with pytest.raises(ValueError, match='conditional model'):
    tasks.class_sample_grid(run_dir, str(tmp_path / 'c.png'))
  conditional = str(tmp_path / 'conditional')
  tasks.train(conditional, presets.replace(SMOKE, conditional=True), verbose=0)
  assert runs.load_glow(conditional).num_classes == 10
  path = tasks.class_sample_grid(conditional, str(tmp_path / 'c.png'),
                                 num_per_class=3)
  assert _png(path).shape == ((10 * 29 - 1) * 4, (3 * 29 - 1) * 4, 1)
  path = tasks.class_sample_grid(conditional, str(tmp_path / 'c1.png'),
                                 num_per_class=3, scale=1)
  assert _png(path).shape == (10 * 29 - 1, 3 * 29 - 1, 1)


def test_paper_presets_match_the_paper():
  cifar = presets.get('cifar10')
  assert (cifar.num_levels, cifar.num_steps, cifar.hidden_channels,
          cifar.coupling, cifar.permutation, cifar.learn_top) == (
              3, 32, 512, 'affine', 'lu', True)
  assert presets.get('imagenet32').num_steps == 48
  assert (presets.get('imagenet64').num_levels,
          presets.get('imagenet64').num_steps) == (4, 48)
  celeba = presets.get('celeba64')
  assert (celeba.num_bits, celeba.coupling, celeba.image_shape) == (
      5, 'additive', (64, 64, 3))
  for name in presets.names():  # Each builds a valid Glow shape.
    config = presets.get(name)
    assert config.image_shape[0] % 2**config.num_levels == 0
  assert isinstance(tasks.build_glow(presets.smoke(cifar)), tfp_glow.Glow)


def test_a_time_budget_stops_training_and_keeps_the_run_whole(tmp_path):
  run_dir = str(tmp_path / 'budget')
  config = presets.replace(SMOKE, epochs=50)
  # A budget that ends with the first step: 1 step, a partial epoch 1 that
  # is evaluated and checkpointed, not 50 epochs.
  result = tasks.train(run_dir, config, verbose=0, max_seconds=1e-3)
  assert (result.epochs, result.steps) == (1, 1)
  assert runs.read_evaluation(run_dir)['epochs'] == 1
  assert tasks.evaluate_run(run_dir).bits_per_dim == pytest.approx(
      result.evaluation.bits_per_dim, rel=1e-6)
  with pytest.raises(ValueError, match='`max_seconds` must be > 0'):
    tasks.train(str(tmp_path / 'zero'), SMOKE, max_seconds=0)
  assert not runs.has_checkpoint(str(tmp_path / 'zero'))


def _budget_progress(budget, epochs, steps, initial_epoch=0):
  """Drives a `_Budget` through `fit`'s callbacks; its progress per step."""
  budget.set_params({'epochs': epochs, 'steps': steps})
  budget.on_train_begin()
  seen = []
  for epoch in range(initial_epoch, epochs):
    budget.on_epoch_begin(epoch)
    for batch in range(steps):
      budget.on_train_batch_begin(batch)
      seen.append(float(budget.progress.numpy()))
      budget.on_train_batch_end(batch)
  return seen


@pytest.mark.parametrize('initial_epoch', [0, 1])
def test_a_budget_that_outlasts_the_epochs_decays_by_steps(initial_epoch):
  # An hour's budget, 3 epochs of 4 steps: the epochs end first, so the
  # cosine must reach its end with them (by steps), not stop a twelfth in.
  budget = run_module._Budget(3600)  # pylint: disable=protected-access
  budget.set_model(types.SimpleNamespace(stop_training=False))
  seen = _budget_progress(budget, 3, 4, initial_epoch)
  total = (3 - initial_epoch) * 4
  np.testing.assert_allclose(seen, np.arange(total) / total, atol=1e-6)
  assert not budget.model.stop_training


def test_a_budget_that_ends_first_decays_by_time():
  clock = [1000.0]
  budget = run_module._Budget(  # pylint: disable=protected-access
      100, clock=lambda: clock[0])
  budget.set_model(types.SimpleNamespace(stop_training=False))
  budget.set_params({'epochs': 50, 'steps': 10})
  budget.on_train_begin()
  budget.on_epoch_begin(0)
  budget.on_train_batch_begin(0)
  clock[0] += 20.0            # The first step traces: 20 s, no progress.
  budget.on_train_batch_end(0)
  budget.on_train_batch_begin(1)
  assert float(budget.progress.numpy()) == pytest.approx(1 / 500)  # Steps.
  clock[0] += 40.0            # Half of the 80 s left: time leads.
  budget.on_train_batch_end(1)
  budget.on_train_batch_begin(2)
  assert float(budget.progress.numpy()) == pytest.approx(0.5)
  assert not budget.model.stop_training
  clock[0] += 40.0
  budget.on_train_batch_end(2)
  assert budget.model.stop_training


def test_a_budget_cosine_decays_with_the_time_spent():
  progress = tf.Variable(0.0)
  config = presets.replace(SMOKE, lr_schedule='cosine', warmup_steps=1)
  optimizer = tasks.build_model(config, 2, progress).optimizer
  rates = []
  for fraction in (0.0, 0.5, 1.0):
    progress.assign(fraction)
    rates.append(float(optimizer.learning_rate))
  np.testing.assert_allclose(rates, [config.learning_rate,
                                     config.learning_rate / 2, 0.0],
                             atol=1e-9)


# ------------------------------------- variational dequantization, IW bound.

VARIATIONAL = presets.replace(SMOKE, dequantization='variational',
                              lr_schedule='constant')


def _dequantizer_weights(run_dir):
  return [v.numpy() for v in runs.load_dequantizer(run_dir).variables]


@pytest.fixture(scope='module')
def variational_runs(tmp_path_factory):
  """An uninterrupted 2-epoch variational run, and one stopped after epoch 1
  (q's weights then kept) and resumed to 2."""
  root = tmp_path_factory.mktemp('variational')
  whole, part = str(root / 'whole'), str(root / 'part')
  result = tasks.train(whole, presets.replace(VARIATIONAL, epochs=2),
                       verbose=0, grid_scale=1, eval_num_samples=4)
  tasks.train(part, VARIATIONAL, verbose=0, grid_scale=1)
  after_one = _dequantizer_weights(part)
  resumed = tasks.train(part, resume=True, epochs=2, verbose=0, grid_scale=1)
  return whole, part, result, resumed, after_one


def test_a_variational_run_stores_and_restores_its_dequantizer(
    variational_runs):
  whole, _, result, _, _ = variational_runs
  with open(os.path.join(whole, 'config.json')) as f:
    config = json.load(f)
  assert presets.Config.from_dict(config['training']) == presets.replace(
      VARIATIONAL, epochs=2)
  dequantizer = runs.load_dequantizer(whole)
  assert config['dequantizer'] == dequantizer.get_config()
  assert dequantizer.is_initialized
  model = runs.load_model(whole)
  assert model.dequantization == 'variational'
  for a, b in zip(model.dequantizer.variables, dequantizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # The restored Glow and q give the figure training computed with its own
  # (in memory), exactly: the same images and noise.
  assert result.evaluation.dequantization == 'variational'
  again = tasks.evaluate_run(whole, num_samples=4)
  assert again == result.evaluation
  assert runs.read_evaluation(whole)['importance_weighted_bits_per_dim'] == (
      result.evaluation.importance_weighted_bits_per_dim)
  # Control: q matters; the Glow alone with uniform noise gives another one.
  assert tasks.evaluate_run(whole).bits_per_dim == again.bits_per_dim
  uniform = tasks.evaluate(runs.load_glow(whole), _held_out(VARIATIONAL))
  assert uniform.bits_per_dim != pytest.approx(again.bits_per_dim, abs=1e-4)


def _held_out(config):
  return data.load(config.dataset, 'test', batch_size=config.eval_batch_size,
                   num_examples=config.eval_examples)


def test_a_resumed_variational_run_replays_the_uninterrupted_one(
    variational_runs):
  whole, part, _, resumed, after_one = variational_runs
  assert (resumed.epochs, resumed.steps) == (2, 4)
  for a, b in zip(_dequantizer_weights(whole), _dequantizer_weights(part)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for a, b in zip(_weights(runs.load_glow(whole)),
                  _weights(runs.load_glow(part))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # q trained in epoch 2 (its variables are the model's), from the values
  # the checkpoint of epoch 1 held.
  moved = [not np.allclose(a, b) for a, b in zip(after_one,
                                                 _dequantizer_weights(part))]
  assert any(moved)


def test_importance_weighted_bound_is_below_the_mean_of_its_own_draws(
    smoke_run, variational_runs):
  held_out = _held_out(SMOKE)
  whole = variational_runs[0]
  for glow, dequantizer in ((runs.load_glow(smoke_run[0]), None),
                            (runs.load_glow(whole),
                             runs.load_dequantizer(whole))):
    draws = tasks.bits_per_dim_draws(glow, held_out, seed=3, num_samples=8,
                                     dequantizer=dequantizer)
    bound = tasks.bits_per_dim_values(glow, held_out, seed=3, num_samples=8,
                                      dequantizer=dequantizer)
    assert draws.shape == (8, 16) and bound.shape == (16,)
    assert np.all(draws.std(axis=0) > 0)   # The draws differ.
    # Jensen, image by image, over the same 8 draws.
    assert np.all(bound <= draws.mean(axis=0) + 1e-9)
    assert np.all(bound >= draws.min(axis=0) - 1e-9)
    # One draw is the single-sample figure of `evaluate` (seed (3, i)).
    single = tasks.bits_per_dim_values(glow, held_out, seed=3,
                                       dequantizer=dequantizer)
    np.testing.assert_array_equal(
        single, tasks.bits_per_dim_draws(glow, held_out, seed=3,
                                         dequantizer=dequantizer)[0])
    e = tasks.evaluate(glow, held_out, seed=3, num_samples=8,
                       dequantizer=dequantizer)
    assert (e.num_samples, e.num_images) == (8, 16)
    assert e.bits_per_dim == pytest.approx(single.mean(), rel=1e-12)
    assert e.importance_weighted_bits_per_dim == pytest.approx(bound.mean(),
                                                               rel=1e-12)


def test_the_variational_draws_are_those_of_its_k_sample_bound(
    variational_runs):
  whole = variational_runs[0]
  glow, dequantizer = runs.load_glow(whole), runs.load_dequantizer(whole)
  images = next(iter(_held_out(SMOKE)))
  bound = dequantizer.bits_per_dim(glow, images, num_samples=4,
                                   seed=tf.constant([5, 0]))
  draws = tasks.bits_per_dim_draws(glow, [images], seed=5, num_samples=4,
                                   dequantizer=dequantizer)
  np.testing.assert_allclose(
      tasks.bits_per_dim_values(glow, [images], seed=5, num_samples=4,
                                dequantizer=dequantizer), bound, rtol=1e-6)
  assert draws.shape == (4, 16)


def test_bad_bound_arguments_are_named(smoke_run, variational_runs, tmp_path):
  glow = runs.load_glow(smoke_run[0])
  held_out = _held_out(SMOKE)
  with pytest.raises(ValueError,
                     match='`num_samples` must be >= 1; got num_samples=0'):
    tasks.evaluate(glow, held_out, num_samples=0)
  with pytest.raises(ValueError, match='`num_samples` must be >= 1'):
    tasks.evaluate_run(smoke_run[0], num_samples=0)
  with pytest.raises(TypeError, match='`dequantizer` must be None or a '
                     'VariationalDequantizer; got Glow'):
    tasks.evaluate(glow, held_out, dequantizer=glow)
  other = tfp_glow.dequantizer.VariationalDequantizer((8, 8, 1))
  with pytest.raises(ValueError, match=r"`dequantizer` must have the Glow's "
                     r'image_shape, num_bits and dtype \(\(28, 28, 1\), 8, '
                     r"'float32'\); got a dequantizer of \(\(8, 8, 1\)"):
    tasks.evaluate(glow, held_out, dequantizer=other)
  with pytest.raises(ValueError, match='`eval_num_samples` must be >= 1'):
    tasks.train(str(tmp_path / 'k'), SMOKE, eval_num_samples=0)
  assert not runs.has_checkpoint(str(tmp_path / 'k'))
  with pytest.raises(ValueError, match="`dequantization` must be one of "
                     "'uniform', 'variational'; got 'learned'"):
    presets.replace(SMOKE, dequantization='learned')
  assert runs.load_dequantizer(smoke_run[0]) is None
  assert runs.load_model(smoke_run[0]).dequantizer is None
