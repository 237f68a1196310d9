"""The non-finite guard of `GlowModel.train_step`.

Each step computes `first_nonfinite(loss, grads)`: `NO_ERROR` (-1) if the loss
and every gradient are finite on every replica, 0 if the loss is not, `i + 1`
if gradient `i` is the first that is not. `apply_if` applies the update only
while that is `NO_ERROR` and nothing was recorded before; `GuardRecord` keeps
the first error of the current `fit`, and `NonFiniteGuard`, the callback
`fit` adds, stops training and reports it.
"""

from typing import Dict, Mapping, Optional, Sequence
import warnings

import tensorflow as tf

from tfp_glow.training._keras import keras

__all__ = ['NO_ERROR', 'GuardRecord', 'NonFiniteGuard', 'first_nonfinite',
           'apply_if', 'message', 'variable_paths']

NO_ERROR = -1  # Value of the guard record while everything is finite.


class GuardRecord:
  """Per-run record of the first non-finite step, invisible to tracking.

  A plain Python object holding one int32 variable, so that neither Keras nor
  `tf.train.Checkpoint` tracks (or saves) it. Under a `tf.distribute`
  strategy it is written with the same value on every replica.
  """

  def __init__(self):
    self.variable = tf.Variable(
        NO_ERROR, dtype=tf.int32, trainable=False,
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        name='nonfinite_guard')

  def is_clear(self) -> tf.Tensor:
    """Scalar bool `Tensor`: nothing recorded yet."""
    return tf.equal(self.variable, NO_ERROR)

  def record(self, bad: tf.Tensor) -> None:
    """Keeps the first error: `bad` if nothing was recorded yet."""
    self.variable.assign(tf.where(self.is_clear(), bad, self.variable))

  def reset(self) -> None:
    self.variable.assign(NO_ERROR)

  def index(self) -> int:
    """The recorded value as a Python int (`NO_ERROR`, 0 or `i + 1`)."""
    return int(self.variable.numpy())


def first_nonfinite(loss: tf.Tensor,
                    grads: Sequence[Optional[tf.Tensor]]) -> tf.Tensor:
  """-1 if all finite, 0 for the loss, i + 1 for the gradient i (all replicas).

  The flags are summed over replicas, so every replica gets the same answer.
  A step whose loss plus the sums of all its gradients is finite has only
  finite values (a NaN or an infinity makes any sum it enters non-finite), so
  it tests one number (one sum per gradient); only when that is not finite
  (a non-finite value, or finite values overflowing the sum) does it test
  each gradient to find the first. That keeps 2 ops per variable out of
  every step.

  Args:
    loss: scalar float `Tensor`.
    grads: list of gradient `Tensor`s (or `tf.IndexedSlices`) or `None`s.

  Returns:
    Scalar int32 `Tensor`.
  """
  values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
  sums = [tf.cast(tf.reduce_sum(v), loss.dtype)
          for v in values if v is not None]
  total = tf.add_n([loss] + sums)
  num_flags = len(values) + 1

  def each_flag():
    flags = [tf.logical_not(tf.math.is_finite(loss))]
    for v in values:
      if v is None:
        flags.append(tf.constant(False))
      else:
        flags.append(tf.logical_not(tf.reduce_all(tf.math.is_finite(v))))
    return tf.cast(tf.stack(flags), tf.float32)

  flags = tf.cond(tf.math.is_finite(total),
                  lambda: tf.zeros([num_flags], tf.float32), each_flag)
  context = tf.distribute.get_replica_context()
  if context is not None:
    flags = context.all_reduce(tf.distribute.ReduceOp.SUM, flags)
  positions = tf.range(num_flags, dtype=tf.int32)
  large = tf.fill([num_flags], tf.int32.max)
  first = tf.reduce_min(tf.where(flags > 0.0, positions, large))
  return tf.where(first == tf.int32.max, NO_ERROR, first)


def apply_if(ok: tf.Tensor, optimizer: keras.optimizers.Optimizer,
             grads: Sequence[Optional[tf.Tensor]],
             variables: Sequence[tf.Variable]) -> None:
  """`optimizer.apply_gradients` if `ok` (the same on every replica).

  The condition runs in cross-replica context, as in Keras'
  LossScaleOptimizer: `tf.distribute` does not allow a `merge_call` (which
  `apply_gradients` makes) inside a `tf.cond` in replica context.
  """
  pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]

  def apply_in_replica(grads_and_vars):
    optimizer.apply_gradients(grads_and_vars)

  def cross_replica(distribution, ok, grads_and_vars):
    ok = distribution.experimental_local_results(ok)[0]

    def apply_fn():
      distribution.extended.call_for_each_replica(
          apply_in_replica, args=(grads_and_vars,))

    tf.cond(ok, apply_fn, lambda: None)

  tf.distribute.get_replica_context().merge_call(
      cross_replica, args=(ok, pairs))


def message(index: int, variables: Sequence[tf.Variable],
            paths: Mapping[int, str]) -> Optional[str]:
  """What `index` (a `first_nonfinite` value) means, or `None` if finite.

  Args:
    index: Python int.
    variables: the trainable variables the gradients were taken for.
    paths: `{id(variable): attribute path}` used to name a variable.
  """
  if index == NO_ERROR:
    return None
  if index == 0:
    return ('the loss is not finite; no update was applied and training '
            'stopped.')
  variable = variables[index - 1]
  path = paths.get(id(variable), variable.name)
  return (f'the gradient of variable {path!r} ({variable.name}, trainable '
          f'variable {index - 1}) is not finite; no update was applied and '
          'training stopped.')


def variable_paths(module: tf.Module) -> Dict[int, str]:
  """`{id(variable): attribute path}` of the variables of a `tf.Module`."""
  paths = {}
  for path, variable in module._flatten(  # pylint: disable=protected-access
      predicate=lambda v: isinstance(v, tf.Variable), with_path=True):
    paths.setdefault(id(variable), '.'.join(str(p) for p in path))
  return paths


class NonFiniteGuard(keras.callbacks.Callback):
  """Stops `fit` after a step whose loss or gradients were not finite.

  `GlowModel.train_step` never applies a non-finite update: it checks the loss
  and every gradient, skips the optimizer step if any is NaN or inf, and
  records what went wrong (the loss, or the first non-finite gradient and
  its variable). From then on it applies no update until the next `fit`. This
  callback reads that record after every batch; if it is set, it sets
  `model.stop_training`, keeps the message in `self.message` and issues a
  `RuntimeWarning` with it. The weights stay those of the last finite step.

  `GlowModel.fit` adds one automatically (first in the list) unless the
  callbacks already hold one.

  #### Examples

  ```python
  model.fit(dataset, epochs=10, callbacks=[NonFiniteGuard()])
  ```
  """

  def __init__(self):
    super().__init__()
    self.message = None

  def on_train_begin(self, logs: Optional[dict] = None) -> None:
    self.message = None

  def on_train_batch_end(self, batch: int,
                         logs: Optional[dict] = None) -> None:
    message = self.model.nonfinite_message()
    if message is None:
      return
    self.message = f'Batch {batch}: {message}'
    self.model.stop_training = True
    warnings.warn(self.message, RuntimeWarning, stacklevel=2)
