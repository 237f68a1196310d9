"""`load`: a batched, seeded `tf.data` pipeline of integer images for Glow."""

import os
from typing import Optional, Tuple, Union
import warnings

import tensorflow as tf

from tfp_glow import _validation
from tfp_glow import vocabulary
from tfp_glow.data import context as context_lib
from tfp_glow.data import preprocess
from tfp_glow.data import sources

__all__ = ['load', 'image_shape', 'context_shape', 'num_classes',
           'held_out_split', 'num_examples', 'attribute_names', 'KEYS']

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BYTES = 256 * 2**20  # Shuffle windows of up to 256 MiB of pixels.
_SEED_MULTIPLIER = 1_000_003
# The keys of the dict elements of `load(..., context=...)`.
KEYS = ('images', 'context', 'labels')


def load(name: str, split: str = 'train', *, batch_size: int = 64,
         image_size: Optional[int] = None, num_bits: int = 8,
         labels: bool = False, attribute: Optional[str] = None,
         context: Optional[str] = None, shuffle: bool = False,
         flip: bool = False, seed: int = 0,
         epochs: Optional[int] = 1, start_epoch: int = 0,
         steps_per_epoch: Optional[int] = None, drop_remainder: bool = False,
         num_examples: Optional[int] = None,
         cache: Union[bool, str, os.PathLike] = True,
         data_dir: Optional[str] = None,
         n_bits: Optional[int] = None) -> tf.data.Dataset:
  """Batches of integer images `[N, H, W, C]` in `[0, 2**num_bits)` for Glow.

  The pipeline, per example, then per epoch:

  ```none
  read (TFDS, or the offline MNIST) -> first `num_examples` -> centre crop /
  resize / pad to `image_size` -> x // 2**(8 - num_bits) -> cache
  per epoch e: shuffle (seed = f(seed, e)) -> random crop (LSUN) and flip
               (seed = f(seed, e, position)) -> batch -> context -> prefetch
  ```

  The shuffle permutes consecutive windows of `SHUFFLE_BYTES` bytes of pixels
  (a whole split of MNIST or CIFAR-10, 21,845 64x64 RGB images) uniformly, with
  stateless random keys, so that each epoch's order is a pure function of
  `(seed, epoch)`.

  Maps run in parallel (`AUTOTUNE`) with deterministic order, so every batch
  is a pure function of `(seed, epoch, step)`: a run resumed at epoch `e`
  (`start_epoch=e`) sees exactly the batches an uninterrupted run would.
  Elements are uint8 images, or `(images, labels)` with int32 labels; with
  `context`, dicts `{'images': uint8 [N, H, W, C], 'context': float32
  [N, *context_shape], 'labels': int32 [N]}` (`'labels'` only with `labels`
  or `attribute`), the data of a conditional Glow p(x | context).

  Args:
    name: a dataset of `tfp_glow.data.names()`: `'mnist_offline'`,
      `'mnist'`, `'cifar10'`, `'celeb_a'`, `'imagenet_resized/32x32'`, ...
    split: a split of the dataset (TFDS slicing such as `'train[:10%]'`
      works for TFDS datasets). Default value: `'train'`.
    batch_size: Python `int` >= 1. Default value: 64.
    image_size: output height and width, or `None` for the dataset's
      default (28 for MNIST, 32 for CIFAR-10, 64 for CelebA and LSUN).
      MNIST is zero-padded to larger sizes; other datasets are resized.
    num_bits: Python `int` in [1, 8]; pixels become `floor(x / 2**(8 -
      num_bits))`. Default value: 8.
    labels: Python `bool`, yield `(images, class labels)`. Default: `False`.
    attribute: a CelebA attribute name (`attribute_names()`): yield
      `(images, 0/1 labels of that attribute)`. Default value: `None`.
    context: `None`, or `'box<k>'` such as `'box4'`: yield dicts whose
      `'context'` is each image box-downsampled k times, the mean of each
      k x k block of pixels scaled to [0, 1] (divided by
      `2**num_bits - 1`), float32 `[N, H / k, W / k, C]`, computed from the
      final image (after bit reduction, crops and flips; see
      `tfp_glow.data.context`). Default value: `None`.
    shuffle: Python `bool`, shuffle every epoch (see above) and take random
      LSUN crops.
    flip: Python `bool`, random horizontal flips. Default value: `False`.
    seed: Python `int`, seeds the shuffle and the augmentation.
    epochs: Python `int` >= 1, or `None` for endless epochs (then give Keras
      `steps_per_epoch`). Iterating the dataset again replays the same
      epochs. Default value: 1.
    start_epoch: Python `int` >= 0, index of the first epoch. Default: 0.
    steps_per_epoch: Python `int` or `None`: make every epoch exactly this
      many batches (its batches cycled, then cut), to match Keras'
      `steps_per_epoch`. Default value: `None` (one pass).
    drop_remainder: Python `bool`, drop each epoch's last partial batch.
    num_examples: Python `int` or `None`: use only the split's first
      `num_examples` examples. Default value: `None`.
    cache: `True` (in memory), `False`, or a file path for `Dataset.cache`.
    data_dir: TFDS data directory, or `None` for TFDS' default.
    n_bits: deprecated name of `num_bits`. Default value: `None`.

  Returns:
    A `tf.data.Dataset`.

  Raises:
    ValueError, TypeError: for a bad argument (unknown dataset, split or
      attribute, labels of an unlabelled dataset, ...); the message names it.
    OSError: if TFDS can neither find nor download the dataset.

  #### Examples

  >>> ds = load('mnist_offline', 'test', batch_size=8, num_bits=5, labels=True)
  >>> images, labels = next(iter(ds))
  >>> images.shape, images.dtype.name, int(tf.reduce_max(images)) < 32
  (TensorShape([8, 28, 28, 1]), 'uint8', True)
  >>> batch = next(iter(load('mnist_offline', 'test', batch_size=8,
  ...                        context='box4')))
  >>> sorted(batch), batch['context'].shape, batch['context'].dtype.name
  (['context', 'images'], TensorShape([8, 7, 7, 1]), 'float32')
  """
  source = sources.get(name)
  _validation.positive_int('batch_size', batch_size)
  size = _image_size(source, image_size)
  num_bits = _num_bits(num_bits, n_bits)
  label_fn = _label_fn(source, labels, attribute)
  to_dict = _dict_maker(context, (size, size, source.channels), num_bits,
                        label_fn is not None)
  _validation.positive_int('seed', seed, minimum=0)
  if epochs is not None:
    _validation.positive_int('epochs', epochs)
  _validation.positive_int('start_epoch', start_epoch, minimum=0)
  if steps_per_epoch is not None:
    _validation.positive_int('steps_per_epoch', steps_per_epoch)
  examples = _examples(source, split, num_examples, data_dir)
  examples = examples.map(_preparer(source, size, num_bits, label_fn),
                          num_parallel_calls=AUTOTUNE, deterministic=True)
  if cache:
    examples = examples.cache('' if cache is True else str(cache))

  def one_epoch(epoch):
    epoch_seed = tf.cast(seed, tf.int64) * _SEED_MULTIPLIER + epoch
    ds = examples
    if shuffle:
      ds = _shuffle(ds, epoch_seed, _window(size, source.channels))
    augment = _augmenter(source, size, shuffle, flip, epoch_seed)
    if augment is not None:
      ds = ds.enumerate().map(augment, num_parallel_calls=AUTOTUNE,
                              deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if to_dict is not None:
      ds = ds.map(to_dict, num_parallel_calls=AUTOTUNE, deterministic=True)
    if steps_per_epoch is not None:
      ds = ds.repeat().take(steps_per_epoch)
    return ds

  if epochs == 1:
    ds = one_epoch(tf.constant(start_epoch, tf.int64))
  else:
    epoch_ids = (tf.data.Dataset.counter(start_epoch) if epochs is None else
                 tf.data.Dataset.range(start_epoch, start_epoch + epochs))
    ds = epoch_ids.flat_map(one_epoch)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).prefetch(AUTOTUNE)


def image_shape(name: str,
                image_size: Optional[int] = None) -> Tuple[int, int, int]:
  """`(H, W, C)` of the images `load(name, image_size=...)` yields.

  >>> image_shape('celeb_a'), image_shape('mnist_offline', 32)
  ((64, 64, 3), (32, 32, 1))
  """
  source = sources.get(name)
  size = _image_size(source, image_size)
  return (size, size, source.channels)


def context_shape(name: str, context: str,
                  image_size: Optional[int] = None) -> Tuple[int, int, int]:
  """The shape of one `context` of `load(name, context=..., image_size=...)`.

  >>> context_shape('mnist_offline', 'box4'), context_shape('celeb_a', 'box4')
  ((7, 7, 1), (16, 16, 3))

  Raises:
    ValueError: for an unknown dataset or context, or a context factor that
      does not divide the image size.
  """
  return context_lib.context_shape(context, image_shape(name, image_size))


def num_classes(name: str) -> Optional[int]:
  """Number of class labels of dataset `name`, or `None` if it has none."""
  return sources.get(name).num_classes


def held_out_split(name: str) -> str:
  """The split held out for evaluation: `'test'` or `'validation'`."""
  return sources.get(name).held_out_split


def num_examples(  # pylint: disable=redefined-outer-name
    name: str, split: str, *, num_examples: Optional[int] = None,
    data_dir: Optional[str] = None) -> int:
  """Number of examples `load(name, split, num_examples=...)` reads.

  >>> num_examples('mnist_offline', 'train'), num_examples('mnist_offline', 'test')
  (4500, 500)
  """
  ds = _examples(sources.get(name), split, num_examples, data_dir)
  count = int(ds.cardinality())
  if count < 0:  # Unknown (some TFDS mocks): count once.
    count = int(ds.reduce(0, lambda n, _: n + 1))
  return count


def attribute_names(name: str = 'celeb_a') -> Tuple[str, ...]:
  """The binary attributes of a dataset with attributes (CelebA's 40)."""
  source = sources.get(name)
  if not source.attributes:
    raise ValueError(f'dataset {name!r} has no attributes; only celeb_a has.')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tuple(tfds.builder(source.tfds_name).info.features['attributes'].keys())


# ---------------------------------------------------------------- helpers.


def _examples(source, split, num_examples, data_dir):  # pylint: disable=redefined-outer-name
  if not isinstance(split, str):
    raise TypeError(f'`split` must be a str; got {split!r}.')
  ds = sources.read(source, split, data_dir)
  if num_examples is not None:
    _validation.positive_int('num_examples', num_examples)
    ds = ds.take(num_examples)
  return ds


def _image_size(source, image_size):
  if image_size is None:
    return source.image_size
  _validation.positive_int('image_size', image_size, minimum=2)
  if source.fit == 'pad' and image_size < source.image_size:
    raise ValueError(
        f'`image_size` for dataset {source.name!r} must be >= '
        f'{source.image_size} (its images are zero-padded, never shrunk); got '
        f'image_size={image_size}.')
  return int(image_size)


def _num_bits(num_bits, n_bits):
  """The bit depth, from `num_bits` or the deprecated `n_bits`."""
  if n_bits is not None:
    warnings.warn('`n_bits` is deprecated; use `num_bits` (the name the model '
                  'and the presets use).', DeprecationWarning, stacklevel=3)
    num_bits = n_bits
  # The sources are 8-bit images: at most 8 bits survive the reduction.
  return vocabulary.check_num_bits(num_bits, maximum=8)


def _label_fn(source, labels, attribute):
  """Returns example -> int32 label, or `None` for images only."""
  if not isinstance(labels, bool):
    raise TypeError(f'`labels` must be a bool; got {labels!r}.')
  if attribute is not None:
    if labels:
      raise ValueError('give `labels=True` or `attribute`, not both; got '
                       f'labels=True, attribute={attribute!r}.')
    known = attribute_names(source.name)
    if attribute not in known:
      raise ValueError(f'unknown `attribute` {attribute!r} of dataset '
                       f'{source.name!r}; known: {", ".join(known)}.')
    return lambda ex: tf.cast(ex['attributes'][attribute], tf.int32)
  if not labels:
    return None
  if source.num_classes is None:
    raise ValueError(f'dataset {source.name!r} has no class labels; '
                     'use labels=False (and an unconditional model).')
  return lambda ex: tf.cast(ex['label'], tf.int32)


def _dict_maker(context, shape, num_bits, has_labels):
  """Returns batch -> `{'images', 'context'[, 'labels']}`, or `None`."""
  if context is None:
    return None
  factor = context_lib.box_factor(context)
  context_lib.context_shape(context, shape)   # Checks the divisibility.

  def to_dict(images, labels=None):   # `map` passes a pair's two parts.
    element = {'images': images,
               'context': context_lib.box_downsample(images, factor, num_bits)}
    if has_labels:
      element['labels'] = labels
    return element

  return to_dict


def _window(size, channels):
  """Examples per shuffle window."""
  return max(1, SHUFFLE_BYTES // (size * size * channels))


def _shuffle(ds, epoch_seed, window):
  """Permutes each window of `window` examples by stateless random keys."""

  def permute(index, element):
    count = tf.shape(tf.nest.flatten(element)[0])[0]
    keys = tf.random.stateless_uniform([count],
                                       seed=tf.stack([epoch_seed, index]))
    order = tf.argsort(keys)
    return tf.nest.map_structure(lambda t: tf.gather(t, order), element)

  return ds.batch(window).enumerate().map(permute).unbatch()


def _preparer(source, size, num_bits, label_fn):
  """Deterministic per-example preprocessing (before the cache).

  LSUN images are resized to `random_crop_scale * size` here; their crops are
  taken per epoch, after the cache (see `_augmenter`).
  """

  def prepare(example):
    image = example['image']
    if source.fit == 'pad':
      image = preprocess.pad_to(image, size)
    else:
      image = preprocess.center_crop(image, source.crop)
      target = size
      if source.random_crop_scale:
        target = int(round(size * source.random_crop_scale))
      image = preprocess.resize(image, target)
    image = preprocess.reduce_bits(image, num_bits)
    if label_fn is None:
      return image
    return image, label_fn(example)

  return prepare


def _augmenter(source, size, shuffle, flip, epoch_seed):
  """Per-epoch `(position, element) -> element` augmentation, or `None`."""
  crop = source.random_crop_scale is not None
  if not (flip or crop):
    return None

  def augment(position, element):
    image, label = element if isinstance(element, tuple) else (element, None)
    seeds = tf.random.experimental.stateless_split(
        tf.stack([epoch_seed, position]), num=2)
    if crop:
      image = (preprocess.random_crop(image, size, seeds[0]) if shuffle else
               preprocess.center_crop(image, size))
    if flip:
      image = preprocess.random_flip(image, seeds[1])
    return image if label is None else (image, label)

  return augment
