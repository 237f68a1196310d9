"""What the task modules share: a run's Glow and config, its first images,
PNG grids, and the traced functions of a Glow (each traced once).
"""

from typing import Any, Callable, Optional, Tuple, Union
import weakref

import tensorflow as tf

from tfp_glow import data
from tfp_glow import images as images_lib
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow.glow import Glow
from tfp_glow.training import batches

TensorLike = tf.types.experimental.TensorLike


class Functions:
  """The traced functions of one Glow, each traced once for any batch size.

  Get them with `functions(glow)`: they are cached per Glow, and hold the
  Glow only through a weak reference (the traced graphs hold its variables),
  so that the cache never keeps a Glow alive.
  """

  def __init__(self, glow: Glow):
    glow_ref = weakref.ref(glow)
    self._glow_ref = glow_ref
    self._samplers = {}
    conditional = bool(glow.num_classes)
    images = tf.TensorSpec([None, *glow.image_shape], tf.uint8)
    seed = tf.TensorSpec([2], tf.int32)

    def bits_per_dim(x, *args):
      labels, s = args if conditional else (None, args[0])
      return glow_ref().bits_per_dim(x, labels=labels, seed=s)

    signature = [images, seed]
    if conditional:
      signature.insert(1, tf.TensorSpec([None], tf.int32))
    self.bits_per_dim = tf.function(bits_per_dim, input_signature=signature)

  def sampler(self, num: int,
              conditional: bool = False) -> Callable[..., tf.Tensor]:
    """`(temperature, seed[, labels]) -> num samples`, traced once."""
    key = (num, conditional)
    if key not in self._samplers:
      glow_ref = self._glow_ref
      signature = [tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int32)]
      if conditional:
        signature.append(tf.TensorSpec([num], tf.int32))

      def draw(temperature, seed, labels=None):
        return glow_ref().sample(num, temperature=temperature, seed=seed,
                                 labels=labels)

      self._samplers[key] = tf.function(draw, input_signature=signature)
    return self._samplers[key]


_FUNCTIONS = weakref.WeakKeyDictionary()



def functions(glow: Glow) -> Functions:
  """The `Functions` of `glow` (built on first use, then cached)."""
  if glow not in _FUNCTIONS:
    _FUNCTIONS[glow] = Functions(glow)
  return _FUNCTIONS[glow]


def as_glow(glow_or_run_dir: Union[Glow, str]) -> Glow:
  """`glow_or_run_dir` if it is a Glow, else the newest Glow of that run."""
  if isinstance(glow_or_run_dir, Glow):
    return glow_or_run_dir
  return runs.load_glow(glow_or_run_dir)


def run_config(run_dir: str) -> presets.Config:
  """The `presets.Config` a run was trained with."""
  return presets.Config.from_dict(runs.read_training_config(run_dir))


def save_grid(path: str, x: TensorLike, glow: Glow, rows: Optional[int] = None,
              scale: Optional[int] = None) -> str:
  """PNG grid of pixel-space images; non-finite pixels are drawn black."""
  x = tf.where(tf.math.is_finite(x), x, tf.zeros_like(x))
  return images_lib.save_png_grid(path, x, num_bits=glow.num_bits, rows=rows,
                                  scale=scale)


def first_images(
    config: presets.Config, split: Optional[str], count: int,
    data_dir: Optional[str],
    attribute: Optional[str] = None) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
  """The first `count` images (and labels) of a split, as tensors."""
  dataset = data.load(
      config.dataset, split or data.held_out_split(config.dataset),
      batch_size=count, image_size=config.image_size, num_bits=config.num_bits,
      labels=config.conditional and attribute is None, attribute=attribute,
      num_examples=count, cache=False, data_dir=data_dir)
  return images_and_labels(next(iter(dataset)))


def images_and_labels(batch: Any) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
  """`(images, int32 labels or None)` of one batch of a dataset."""
  images, labels = batches.images_and_labels(batch)
  return images, None if labels is None else tf.cast(labels, tf.int32)
