"""What the task modules share: a run's Glow and config, its first images,
PNG grids, and the traced functions of a Glow (each traced once).
"""

from typing import Any, Callable, Dict, Optional, Tuple, Union
import weakref

import numpy as np
import tensorflow as tf

from tfp_glow import data
from tfp_glow import images as images_lib
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow.dequantizer import VariationalDequantizer
from tfp_glow.glow import Glow
from tfp_glow.training import batches

TensorLike = tf.types.experimental.TensorLike


class Functions:
  """The traced functions of one Glow, each traced once for any batch size.

  Get them with `functions(glow)`: they are cached per Glow, and hold the
  Glow only through a weak reference (the traced graphs hold its variables),
  so that the cache never keeps a Glow alive. `draws(...)` gives the
  single-sample bits/dim of dequantization draws (uniform, or a
  `VariationalDequantizer`'s) of a dict of `batch_parts`, `sampler(...)`
  samplers.
  """

  def __init__(self, glow: Glow):
    glow_ref = weakref.ref(glow)
    self._glow_ref = glow_ref
    self._samplers = {}
    self._draws = {}   # num_samples -> function, uniform dequantization.
    # dequantizer -> {num_samples -> function}; weak, as the Glow.
    self._variational_draws = weakref.WeakKeyDictionary()
    self._context_shape = glow.context_shape
    self._signature = [batch_spec(glow), tf.TensorSpec([2], tf.int32)]

  def draws(self, num_samples: int = 1,
            dequantizer: Optional[VariationalDequantizer] = None
            ) -> Callable[..., tf.Tensor]:
    """`(batch, seed) -> [K, N]` single-sample bits/dim of K draws, traced once.

    The K draws of a batch of N images run as one batch of K * N, draw k
    the images repeated, `[k * N:(k + 1) * N]`, with one seed:
    `Glow.bits_per_dim` (uniform noise; K = 1 is its single-sample value)
    or with a `dequantizer` `VariationalDequantizer.bits_per_dim` with
    `num_samples=1` (u ~ q(u | x): the ELBO in bits; the draws of its
    `num_samples=K`).
    """
    if dequantizer is None:
      table = self._draws
    else:
      table = self._variational_draws.setdefault(dequantizer, {})
    if num_samples not in table:
      table[num_samples] = tf.function(
          self._draws_fn(num_samples, dequantizer),
          input_signature=self._signature, autograph=False)
    return table[num_samples]

  def _draws_fn(self, num_samples, dequantizer):
    glow_ref = self._glow_ref
    q_ref = None if dequantizer is None else weakref.ref(dequantizer)

    def draws(batch, seed):
      batch = {k: repeat(v, num_samples) for k, v in batch.items()}
      kwargs = dict(labels=batch.get('labels'), context=batch.get('context'),
                    seed=seed)
      if q_ref is None:
        bits = glow_ref().bits_per_dim(batch['images'], **kwargs)
      else:
        bits = q_ref().bits_per_dim(glow_ref(), batch['images'], **kwargs)
      return tf.reshape(bits, [num_samples, -1])

    return draws

  def sampler(self, num: int, conditional: bool = False,
              context: bool = False) -> Callable[..., tf.Tensor]:
    """`(temperature, seed[, labels][, context]) -> num samples`, traced once.

    `context` (`[num, *context_shape]`) is for a Glow with `context_shape`.
    """
    key = (num, conditional, context)
    if key not in self._samplers:
      glow_ref = self._glow_ref
      signature = [tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int32)]
      if conditional:
        signature.append(tf.TensorSpec([num], tf.int32))
      if context:
        signature.append(tf.TensorSpec([num, *self._context_shape],
                                       tf.float32))

      def draw(temperature, seed, *extra):
        extra = list(extra)
        labels = extra.pop(0) if conditional else None
        return glow_ref().sample(num, temperature=temperature, seed=seed,
                                 labels=labels,
                                 context=extra[0] if context else None)

      self._samplers[key] = tf.function(draw, input_signature=signature,
                                        autograph=False)
    return self._samplers[key]


_FUNCTIONS = weakref.WeakKeyDictionary()



def repeat(t: tf.Tensor, k: int) -> tf.Tensor:
  """`[k * N, ...]`: `t` (`[N, ...]`) repeated k times, copy after copy."""
  if k == 1:
    return t
  return tf.reshape(tf.broadcast_to(t, tf.concat([[k], tf.shape(t)], 0)),
                    tf.concat([[-1], tf.shape(t)[1:]], 0))


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


def spread_batch(config: presets.Config, split: Optional[str], count: int,
                 data_dir: Optional[str], glow: Glow,
                 pool: int = 500) -> Dict[str, tf.Tensor]:
  """`batch_parts` of `count` examples spread evenly over the first `pool`.

  Evenly spaced rather than the first `count`, because some splits are
  sorted by class (the offline MNIST's): 10 of its first 500 test digits are
  one of each class.
  """
  pool = max(pool, count)
  dataset = data.load(
      config.dataset, split or data.held_out_split(config.dataset),
      batch_size=pool, image_size=config.image_size, num_bits=config.num_bits,
      labels=config.conditional, context=config.context, num_examples=pool,
      cache=False, data_dir=data_dir)
  parts = batch_parts(next(iter(dataset)), glow)
  available = int(parts['images'].shape[0])
  if available < count:
    raise ValueError(f'`num_images`={count} exceeds the {available} examples '
                     f'of split {split or data.held_out_split(config.dataset)!r}'
                     f' of dataset {config.dataset!r}.')
  index = np.linspace(0, available - 1, count).round().astype(np.int32)
  return {k: tf.gather(v, index) for k, v in parts.items()}


def images_and_labels(batch: Any) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
  """`(images, int32 labels or None)` of one batch of a dataset."""
  images, labels = batches.images_and_labels(batch)
  return images, None if labels is None else tf.cast(labels, tf.int32)


def batch_spec(glow: Glow) -> Dict[str, tf.TensorSpec]:
  """The `tf.TensorSpec`s of the dict `batch_parts` gives for `glow`."""
  spec = {'images': tf.TensorSpec([None, *glow.image_shape], tf.uint8)}
  if glow.num_classes:
    spec['labels'] = tf.TensorSpec([None], tf.int32)
  if glow.context_shape is not None:
    spec['context'] = tf.TensorSpec([None, *glow.context_shape], tf.float32)
  return spec


def batch_parts(batch: Any, glow: Glow,
                where: str = 'tfp_glow.tasks') -> Dict[str, tf.Tensor]:
  """What `glow` reads of one batch: `{'images'[, 'labels'][, 'context']}`.

  `batch` is any element `GlowModel` takes (images, a tuple or a dict);
  labels are kept for a class-conditional Glow, the context for a Glow with
  `context_shape`.

  Raises:
    ValueError: if the Glow needs labels or a context the batch lacks; the
      message names it.
  """
  data = batches.unpack(batch, where)
  parts = {'images': tf.cast(data.images, tf.uint8)}
  needs = (('labels', bool(glow.num_classes), tf.int32),
           ('context', glow.context_shape is not None, tf.float32))
  for key, needed, dtype in needs:
    value = getattr(data, key)
    if needed and value is None:
      raise ValueError(f'{where}: this Glow needs `{key}` in every batch '
                       f"(a dict with key '{key}'); the data have none.")
    if needed:
      parts[key] = tf.cast(value, dtype)
  return parts
