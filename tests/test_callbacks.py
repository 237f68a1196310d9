"""Keras callbacks with `GlowModel` under Keras 3: sample grids, TensorBoard,
ModelCheckpoint and BackupAndRestore resuming exactly."""

import glob
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfp_glow.training import callbacks as glow_callbacks
from tfp_glow import images as glow_images
from tfp_glow.training._keras import keras


def _dataset(images):
  return tf.data.Dataset.from_tensor_slices(images).batch(16)


def _values(variables):
  return [np.array(v.numpy()) for v in variables]


def _events(log_dir, run):
  """{tag: [(step, value)]} of the event files of `log_dir/run`."""
  out = {}
  for path in sorted(glob.glob(os.path.join(log_dir, run, 'events.*'))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        out.setdefault(value.tag, []).append(
            (event.step, tf.make_ndarray(value.tensor)))
  return out


def _decode(path):
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


def _grid(samples, rows=None):
  return glow_images.image_grid(glow_images.to_uint8(samples).numpy(), rows)


def test_sample_grid_writes_seeded_pngs_and_tensorboard_images(
    tmp_path, uint8_images, compiled_model):
  png_dir, log_dir = str(tmp_path / 'samples'), str(tmp_path / 'logs')
  dataset = _dataset(uint8_images())
  model = compiled_model()
  grid = glow_callbacks.SampleGrid(png_dir, temperatures=(0.7, 1.0),
                                   num_samples=6, seed=3, log_dir=log_dir)
  every_2 = glow_callbacks.SampleGrid(str(tmp_path / 'every2'),
                                      every_n_epochs=2, num_samples=4,
                                      temperatures=(0.5,), rows=1, scale=1)
  history = model.fit(dataset, epochs=2, validation_data=dataset, verbose=0,
                      callbacks=[grid, every_2,
                                 keras.callbacks.TensorBoard(log_dir)])

  names = sorted(os.listdir(png_dir))
  assert names == ['epoch_001_t0.7.png', 'epoch_001_t1.0.png',
                   'epoch_002_t0.7.png', 'epoch_002_t1.0.png']
  assert os.listdir(tmp_path / 'every2') == ['epoch_002_t0.5.png']
  # 6 samples: 3 rows x 2 columns of 8x8 tiles, 1 pixel apart, all upscaled
  # x12 by default (tiles 96 pixels high); scale=1 keeps one pixel per pixel.
  pngs = {n: _decode(os.path.join(png_dir, n)) for n in names}
  assert all(p.shape == (26 * 12, 17 * 12, 1) and p.dtype == np.uint8
             for p in pngs.values())
  assert _decode(str(tmp_path / 'every2' / 'epoch_002_t0.5.png')).shape == (
      8, 35, 1)
  # Deterministic: the final weights and seed (3, 2) redraw epoch 2's grid.
  redrawn = model.glow.sample(6, temperature=0.7, seed=(3, 2))
  np.testing.assert_array_equal(pngs['epoch_002_t0.7.png'], _grid(redrawn))
  assert not np.array_equal(pngs['epoch_002_t0.7.png'],
                            pngs['epoch_002_t1.0.png'])
  assert not np.array_equal(pngs['epoch_001_t0.7.png'],
                            pngs['epoch_002_t0.7.png'])

  # TensorBoard: our images next to Keras' scalars, at the same steps.
  images = _events(log_dir, 'samples')
  assert set(images) == {'samples/t0.7', 'samples/t1.0'}
  step, tensor = images['samples/t0.7'][1]
  assert step == 1 and tensor[:2].tolist() == [b'204', b'312']  # width, height
  np.testing.assert_array_equal(tf.io.decode_png(tensor[2]).numpy(),
                                pngs['epoch_002_t0.7.png'])
  for run, key in (('train', 'bits_per_dim'),
                   ('validation', 'val_bits_per_dim')):
    scalars = _events(log_dir, run)
    assert [s for s, _ in scalars['epoch_bits_per_dim']] == [0, 1]
    np.testing.assert_allclose(
        [float(v) for _, v in scalars['epoch_bits_per_dim']],
        history.history[key], rtol=1e-6)
    assert 'epoch_loss' in scalars


def test_sample_grid_labels_epochs_and_errors(tmp_path, small_glow):
  glow = small_glow(num_classes=3)
  # As if trained: the class-conditional prior's weights away from zero.
  weights = [v for v in glow.variables if 'class_weights' in v.name]
  assert len(weights) == 1
  weights[0].assign(tf.random.stateless_normal(weights[0].shape, (1, 2)))
  grid = glow_callbacks.SampleGrid(str(tmp_path), every_n_epochs=2,
                                   temperatures=(1.0,), num_samples=4,
                                   glow=glow)
  grid.on_train_begin()
  for epoch in range(4):
    grid.on_epoch_end(epoch)
  assert [os.path.basename(p) for p in grid.paths] == [
      'epoch_002_t1.0.png', 'epoch_004_t1.0.png']
  # Default labels cycle through the classes; other labels, other images.
  default = grid.sample(2)[1.0]
  cycled = glow.sample(4, temperature=1.0, seed=(0, 2), labels=[0, 1, 2, 0])
  np.testing.assert_array_equal(default.numpy(), cycled.numpy())
  other = glow_callbacks.SampleGrid(str(tmp_path), temperatures=(1.0,),
                                    num_samples=4, labels=[2, 2, 2, 2],
                                    glow=glow)
  assert not np.array_equal(other.sample(2)[1.0].numpy(), default.numpy())

  unconditional = small_glow()
  with pytest.raises(ValueError, match='not class-conditional'):
    glow_callbacks.SampleGrid(str(tmp_path), num_samples=2, labels=[0, 1],
                              glow=unconditional).on_train_begin()
  with pytest.raises(ValueError, match=r'`labels` must be in \[0, 3\)'):
    glow_callbacks.SampleGrid(str(tmp_path), num_samples=2, labels=[0, 3],
                              glow=glow).on_train_begin()
  with pytest.raises(ValueError, match='a model that has a `.glow`'):
    bare = glow_callbacks.SampleGrid(str(tmp_path))
    bare.set_model(keras.Sequential([keras.layers.Dense(1)]))
    bare.on_train_begin()
  with pytest.raises(ValueError, match='`directory`.*or `log_dir`'):
    glow_callbacks.SampleGrid()
  with pytest.raises(ValueError, match='every_n_epochs'):
    glow_callbacks.SampleGrid(str(tmp_path), every_n_epochs=0)
  with pytest.raises(ValueError, match=r'temperatures\[1\]'):
    glow_callbacks.SampleGrid(str(tmp_path), temperatures=(0.7, -1.0))
  with pytest.raises(ValueError, match='`temperatures` must not be empty'):
    glow_callbacks.SampleGrid(str(tmp_path), temperatures=())
  with pytest.raises(ValueError, match=r'4 \(num_samples\) int class ids'):
    glow_callbacks.SampleGrid(str(tmp_path), num_samples=4, labels=[0, 1])
  with pytest.raises(TypeError, match='`seed` must be an int'):
    glow_callbacks.SampleGrid(str(tmp_path), seed=1.5)
  with pytest.raises(ValueError, match='`scale` must be >= 1; got scale=0'):
    glow_callbacks.SampleGrid(str(tmp_path), scale=0)
  with pytest.raises(TypeError, match='`scale` must be an int'):
    glow_callbacks.SampleGrid(str(tmp_path), scale=2.5)


class _Interrupt(keras.callbacks.Callback):
  """Simulates a crash at the start of epoch `epoch` (0-based)."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch:
      raise RuntimeError('Interrupted.')


def _assert_same_state(model, reference):
  for a, b in zip(_values(reference.variables), _values(model.variables)):
    np.testing.assert_array_equal(a, b)
  assert len(model.optimizer.variables) == len(reference.optimizer.variables)
  for a, b in zip(_values(reference.optimizer.variables),
                  _values(model.optimizer.variables)):
    np.testing.assert_array_equal(a, b)


def test_model_checkpoint_and_backup_resume_exactly(tmp_path, uint8_images,
                                                    compiled_model):
  dataset = _dataset(uint8_images())
  reference = compiled_model(seed=0)
  uninterrupted = reference.fit(dataset, epochs=2, verbose=0).history['loss']

  # A run that saves after epoch 1 and crashes at the start of epoch 2.
  checkpoint = keras.callbacks.ModelCheckpoint(
      str(tmp_path / 'ckpt' / 'epoch_{epoch}.weights.h5'),
      save_weights_only=True)
  backup_dir = str(tmp_path / 'backup')
  crashed = compiled_model(seed=0)
  with pytest.raises(RuntimeError, match='Interrupted'):
    crashed.fit(dataset, epochs=2, verbose=0, callbacks=[
        checkpoint, keras.callbacks.BackupAndRestore(backup_dir),
        _Interrupt(1)])
  assert os.listdir(tmp_path / 'ckpt') == ['epoch_1.weights.h5']

  # ModelCheckpoint: load_weights into a model built with another seed
  # (compiled, so its optimizer is built and takes the saved moments).
  resumed = compiled_model(seed=1)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    resumed.load_weights(str(tmp_path / 'ckpt' / 'epoch_1.weights.h5'))
  assert not [w for w in caught if 'Skipping' in str(w.message)]
  assert resumed.glow.is_initialized
  assert int(resumed.optimizer.iterations.numpy()) == 2
  history = resumed.fit(dataset, initial_epoch=1, epochs=2, verbose=0)
  assert history.history['loss'] == uninterrupted[1:]
  _assert_same_state(resumed, reference)

  # BackupAndRestore: the same fit call on a fresh model continues at epoch 2.
  restored = compiled_model(seed=1)
  history = restored.fit(dataset, epochs=2, verbose=0, callbacks=[
      keras.callbacks.BackupAndRestore(backup_dir)])
  assert history.history['loss'] == uninterrupted[1:]
  _assert_same_state(restored, reference)
  assert not os.path.exists(backup_dir)  # Deleted once training completed.


def test_sample_grid_of_a_conditional_model_with_an_encoder(tmp_path):
  """The grid samples p(x | context), the raw context through the encoder."""
  import tfp_glow  # pylint: disable=g-import-not-at-top
  from tests.conftest import make_small_glow  # pylint: disable=g-import-not-at-top
  SampleGrid = glow_callbacks.SampleGrid  # pylint: disable=invalid-name
  glow = make_small_glow((8, 8, 1), context_shape=(2,))
  encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model = tfp_glow.GlowModel(glow, context_encoder=encoder, init_batch_size=8)
  model.compile()
  images = tf.cast(tf.random.stateless_uniform([8, 8, 8, 1], [1, 2], 0, 256),
                   tf.uint8)
  features = tf.random.stateless_normal([8, 3], [3, 4])
  grid = SampleGrid(str(tmp_path), temperatures=(0.7,), num_samples=4,
                    context=features[:1])
  data = tf.data.Dataset.from_tensor_slices(
      {'images': images, 'context': features}).batch(8)
  model.fit(data, epochs=1, verbose=0, callbacks=[grid])
  assert [os.path.basename(p) for p in grid.paths] == ['epoch_001_t0.7.png']
  # Missing context for a conditional Glow: a clear error when training starts.
  with pytest.raises(ValueError, match='`context`.*required iff the Glow is '
                     'conditional'):
    model.fit(data, epochs=1, verbose=0, callbacks=[SampleGrid(str(tmp_path))])
