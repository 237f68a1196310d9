"""The images (and labels) in the data given to `GlowModel`."""

from typing import Any, Optional, Tuple, Union

import tensorflow as tf

__all__ = ['images_and_labels', 'take_init_batch']

TensorLike = tf.types.experimental.TensorLike


def images_and_labels(data: Any) -> Tuple[Any, Any]:
  """`(images, labels)` of one element: `images`, `(images,)` or a pair.

  Returns:
    `(images, labels)`, `labels` `None` if `data` holds none.

  Raises:
    ValueError: for a tuple of more than 2 elements.
  """
  if isinstance(data, (tuple, list)):
    if len(data) not in (1, 2):
      raise ValueError('GlowModel data must be `images` or `(images, '
                       f'labels)`; got a tuple of {len(data)} elements.')
    return data[0], (data[1] if len(data) == 2 else None)
  return data, None


def take_init_batch(
    x: Union[tf.data.Dataset, TensorLike, None], y: Optional[TensorLike],
    n: int) -> Tuple[TensorLike, Optional[TensorLike]]:
  """The first `n` images (and labels) of `fit`'s training data.

  Args:
    x: a batched `tf.data.Dataset` of `images` or `(images, labels)`, or an
      array of images.
    y: labels for an array `x`, or `None`.
    n: Python `int`, the number of images to take.

  Returns:
    `(images, labels)`, `labels` `None` if the data hold none. For a dataset
    whose images are not of rank 4 (unbatched, or without a channel axis),
    its first element, which the data checks then reject with a hint.

  Raises:
    ValueError: if `x` is None.
  """
  if isinstance(x, tf.data.Dataset):
    images_spec, _ = images_and_labels(x.element_spec)
    if getattr(images_spec, 'shape', None) is not None and (
        images_spec.shape.rank is not None and images_spec.shape.rank != 4):
      # Not batches [N, H, W, C]: the first element as it is, for the data
      # checks to name the shape (unbatching it would hide the mistake).
      return images_and_labels(next(iter(x)))
    return images_and_labels(next(iter(x.unbatch().take(n).batch(n))))
  if x is None:
    raise ValueError('GlowModel.fit needs training data `x` for the '
                     'data-dependent init; got x=None.')
  labels = None if y is None else y[:n]
  return x[:n], labels
