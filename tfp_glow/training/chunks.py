"""A batch's loss as independent chunks, so that a CPU's cores run at once.

A Glow's training step is one long chain of small ops (the flow layers and
their log-dets) between the coupling networks' convolutions. With
TensorFlow's default threading each op is split over the cores, and the
small ones pay more in synchronisation than they gain; under
`tfp_glow.configure_cpu_threads()` each op runs on one thread and as many
ops run at once as there are cores, so a batch split into one chain per core
keeps every core busy. Each image's bits/dim depends on that image alone, so
the size-weighted mean of the chunks' losses is the batch's loss (up to the
order of the sums) and the per-image values are the same.

Only a batch whose size is known when the step is traced is split (datasets
batched with `drop_remainder=True`, as tfp_glow's training pipelines are):
the sizes are then Python ints and no chunk is empty.
"""

from typing import Callable, Optional, Tuple

import tensorflow as tf

from tfp_glow._hardware import chunk_sizes

__all__ = ['chunk_sizes', 'over_chunks']

LossFn = Callable[..., Tuple[tf.Tensor, tf.Tensor]]


def over_chunks(loss_fn: LossFn, num_chunks: int,
                *tensors: Optional[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
  """`loss_fn(*tensors)`, computed on chunks of the batch.

  Args:
    loss_fn: maps a batch of the `tensors` (each `[n, ...]`, or `None`) to
      `(mean loss, per-example values [n])`.
    num_chunks: Python `int` >= 1, the chunks to split the batch into.
    *tensors: the batch, `[N, ...]` each (the first one not `None` gives
      N), or `None` (passed to every chunk as `None`).

  Returns:
    `(loss, per_example)`: the chunks' losses weighted by their sizes, and
    their per-example values concatenated `[N]`.
  """
  first = next(t for t in tensors if t is not None)
  sizes = chunk_sizes(tf.compat.dimension_value(first.shape[0]), num_chunks)
  if len(sizes) == 1:
    return loss_fn(*tensors)
  batch_size = sum(sizes)
  parts = [[None] * len(sizes) if t is None else tf.split(t, sizes)
           for t in tensors]
  losses, per_example = zip(*(loss_fn(*chunk) for chunk in zip(*parts)))
  loss = tf.add_n([l * (size / batch_size) for l, size in zip(losses, sizes)])
  return loss, tf.concat(per_example, axis=0)
