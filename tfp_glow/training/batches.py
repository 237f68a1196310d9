"""The images, labels and context in the data given to `GlowModel`.

One element of the data (a batch of `fit`, `evaluate`, `initialize`) is one
of

```none
images                                   a tensor or array [N, H, W, C]
(images,)  (images, labels)              tuples (unconditional or by class)
{'images': ..., 'labels': ..., 'context': ...}   a dict; only 'images' required
({...},)                                 a dict wrapped by Keras' array adapter
```
"""

from typing import Any, Mapping, NamedTuple, Optional, Tuple, Union

import tensorflow as tf

__all__ = ['DATA_KEYS', 'Data', 'unpack', 'describe', 'images_and_labels',
           'take_init_batch']

TensorLike = tf.types.experimental.TensorLike

# The keys of a dict element of the data.
DATA_KEYS = ('images', 'labels', 'context')


class Data(NamedTuple):
  """One element of the data: `images` and the optional `labels`, `context`."""
  images: Any
  labels: Any = None
  context: Any = None


def unpack(data: Any, where: str = 'GlowModel') -> Data:
  """The `Data` of one element: `images`, a tuple or a dict (see above).

  Args:
    data: one element of the data.
    where: the method, e.g. `'GlowModel.train_step'`, named in messages.

  Returns:
    `Data(images, labels, context)`, `None` for what the element lacks.

  Raises:
    ValueError: for a tuple of more than 2 elements, a tuple holding a dict
      beside other values, a dict with keys other than `DATA_KEYS` or without
      `'images'`.
  """
  if isinstance(data, (tuple, list)):
    if len(data) == 1 and isinstance(data[0], Mapping):
      return _from_dict(data[0], where)   # Keras 3 wraps an array dict so.
    if any(isinstance(d, Mapping) for d in data):
      raise ValueError(
          f'{where}: a dict of data must be the whole element, with labels '
          "under its 'labels' key: {'images': ..., 'labels': ..., "
          f"'context': ...}}; got a tuple of {len(data)} elements holding a "
          'dict (fit(x=dict, y=labels)?).')
    if len(data) not in (1, 2):
      raise ValueError(
          f'{where}: data must be `images`, `(images, labels)` or a dict '
          "{'images': ..., 'labels': ..., 'context': ...}; got a tuple of "
          f'{len(data)} elements.')
    return Data(data[0], data[1] if len(data) == 2 else None)
  if isinstance(data, Mapping):
    return _from_dict(data, where)
  return Data(data)


def _from_dict(data, where):
  unknown = sorted(str(k) for k in data if k not in DATA_KEYS)
  if unknown or 'images' not in data:
    problem = (f'unknown keys {unknown}' if unknown else
               "no 'images' key")
    raise ValueError(
        f"{where}: a dict of data must have the key 'images' and may have "
        f"'labels' and 'context' (keys {list(DATA_KEYS)}); got keys "
        f'{sorted(str(k) for k in data)}: {problem}.')
  return Data(data['images'], data.get('labels'), data.get('context'))


def describe(data: Any) -> str:
  """What the elements of the data hold, for messages: `'images only'`,
  `'(images, labels) tuples'` or `"dicts with keys ['images']"`."""
  if isinstance(data, (tuple, list)) and len(data) == 1:
    data = data[0]
  if isinstance(data, Mapping):
    return f'dicts with keys {sorted(str(k) for k in data)}'
  if isinstance(data, (tuple, list)):
    return f'tuples of {len(data)} elements' if len(data) != 2 else (
        '(images, labels) tuples')
  return 'images only'


def images_and_labels(data: Any) -> Tuple[Any, Any]:
  """`(images, labels)` of one element (any form `unpack` takes).

  Returns:
    `(images, labels)`, `labels` `None` if `data` holds none.

  Raises:
    ValueError: for data `unpack` rejects.
  """
  images, labels, _ = unpack(data)
  return images, labels


def take_init_batch(
    x: Union[tf.data.Dataset, TensorLike, Mapping[str, TensorLike], None],
    y: Optional[TensorLike], n: int,
    where: str = 'GlowModel.fit (data-dependent init)') -> Data:
  """The first `n` examples of `fit`'s training data.

  Args:
    x: a batched `tf.data.Dataset` of elements `unpack` takes, an array of
      images, or a dict of arrays (keys `DATA_KEYS`).
    y: labels for an array `x`, or `None`.
    n: Python `int`, the number of examples to take.
    where: named in messages. Default value:
      `'GlowModel.fit (data-dependent init)'`.

  Returns:
    `Data(images, labels, context)`, `None` for what the data lack. For a
    dataset whose images are not of rank 4 (unbatched, or without a channel
    axis), its first element, which the data checks then reject with a hint.

  Raises:
    ValueError: if `x` is None, or for data `unpack` rejects.
  """
  if isinstance(x, tf.data.Dataset):
    images_spec = unpack(x.element_spec, where).images
    if getattr(images_spec, 'shape', None) is not None and (
        images_spec.shape.rank is not None and images_spec.shape.rank != 4):
      # Not batches [N, H, W, C]: the first element as it is, for the data
      # checks to name the shape (unbatching it would hide the mistake).
      return unpack(next(iter(x)), where)
    return unpack(next(iter(x.unbatch().take(n).batch(n))), where)
  if x is None:
    raise ValueError(f'{where}: `fit` needs training data `x` for the '
                     'data-dependent init; got x=None.')
  data = unpack(x if y is None else (x, y), where)
  return Data(*(None if v is None else v[:n] for v in data))
