"""`tf.distribute` helpers of `GlowModel`: noise slices, consistent init."""

from typing import Dict, Sequence

import tensorflow as tf

__all__ = ['replica_offset', 'broadcast_from_first_replica', 'is_chief',
           'is_multi_worker', 'step_outputs']

TensorLike = tf.types.experimental.TensorLike


def replica_offset(num_elements: TensorLike) -> tf.Tensor:
  """Counter offset of this replica's slice of the global batch's noise.

  In replica context of a strategy with R > 1 replicas, replica r's batch is
  slice r of the global batch, so its noise starts at `r * num_elements`;
  0 otherwise.

  Args:
    num_elements: int64 scalar, the elements of this replica's batch.

  Returns:
    int64 scalar `Tensor`.
  """
  strategy = tf.distribute.get_strategy()
  if strategy.num_replicas_in_sync == 1:
    return tf.constant(0, tf.int64)
  context = tf.distribute.get_replica_context()
  replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
  return replica * tf.cast(num_elements, tf.int64)


def broadcast_from_first_replica(strategy: tf.distribute.Strategy,
                                 variables: Sequence[tf.Variable]) -> None:
  """Sets every replica's copy of `variables` to that of replica 0, exactly.

  Values assigned in cross-replica context reach only the replicas of the
  calling worker: with `MultiWorkerMirroredStrategy`, a data-dependent init
  computed on different data by different workers would leave the workers
  with different weights for the rest of training. This all-reduces replica
  0's values (the others contribute zeros, so the sum is exact) and assigns
  them everywhere. A no-op with one replica.

  Args:
    strategy: the `tf.distribute.Strategy` the variables were created in.
    variables: list of float `tf.Variable`s of that strategy.
  """
  if strategy.num_replicas_in_sync == 1 or not variables:
    return

  def first_replica_values():
    context = tf.distribute.get_replica_context()
    first = tf.equal(context.replica_id_in_sync_group, 0)
    values = [tf.where(first, tf.identity(v), tf.zeros_like(v))
              for v in variables]
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

  @tf.function
  def broadcast():
    values = strategy.run(first_replica_values)
    for variable, value in zip(variables, values):
      variable.assign(strategy.experimental_local_results(value)[0])

  broadcast()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process should write files (sample grids, summaries).

  True unless `strategy` is a multi-worker strategy and this worker is
  neither the `chief` nor, in a cluster without one, worker 0.
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  task_type = getattr(resolver, 'task_type', None)
  if resolver is None or task_type is None:
    return True
  if task_type == 'chief':
    return True
  cluster = resolver.cluster_spec().as_dict()
  return task_type == 'worker' and resolver.task_id == 0 and (
      'chief' not in cluster)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
  """Whether `strategy` is a `MultiWorkerMirroredStrategy` of > 1 workers.

  The test Keras 3 makes before reducing a step's outputs with
  `strategy.reduce('MEAN', value, axis=0)`, which fails for scalars
  (tensorflow/tensorflow#72388).
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  in_multi_worker_mode = getattr(strategy.extended, '_in_multi_worker_mode',
                                 None)
  return bool(in_multi_worker_mode and in_multi_worker_mode())


def step_outputs(results: Dict[str, tf.Tensor],
                 keras3: bool) -> Dict[str, tf.Tensor]:
  """A train or test step's `{name: scalar}` outputs, as Keras can reduce them.

  Under a multi-worker strategy Keras 3 reduces the step's outputs over the
  replicas *and* axis 0, which fails for scalars
  (tensorflow/tensorflow#72388); a shape-[1] value reduces to the same
  scalar (the mean over replicas). Unchanged otherwise.
  """
  if keras3 and is_multi_worker(tf.distribute.get_strategy()):
    return {k: tf.reshape(v, [1]) for k, v in results.items()}
  return results
