"""What every tfp_glow bijector shares: a cache that cannot go stale.

TFP caches `forward`/`inverse` results keyed on the identity of the input
tensor. That goes wrong two ways for Glow:

- Glow's variables change during training, so in eager mode the same tensor
  passed twice would get the output computed with the old weights.
- A tensor that outlives one trace (an eager tensor captured by two
  `tf.function`s, or an outer graph's tensor seen inside a nested function)
  would get an output that lives in another graph: `InaccessibleTensorError`.

So the cache below serves a lookup only while a graph is being traced and the
input belongs to that graph (`tf.function`, Keras `fit`), where it saves real
work: the inverse pass of `log_prob` also stores each layer's log-det ("greedy
attributes"), so the log-det never reruns a coupling network. In eager mode it
is off, except inside `single_pass()`: `Glow` wraps each eager `log_prob` in it,
so that the log-dets come out of the same inverse pass as in a graph, and the
entries are dropped when the call returns.
"""

import contextlib
import threading
from typing import Iterator, Optional

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

__all__ = ['GlowBijector', 'GraphOnlyCache', 'GraphOnlyGreedyCache',
           'single_pass']

_STORAGES = []  # The storage of every GraphOnlyCache class attribute.
_SCOPE = threading.local()


@contextlib.contextmanager
def single_pass() -> Iterator[None]:
  """Lets eager calls inside share one pass; forgets them on exit.

  Inside, an eager `inverse(x)` stores its output and log-dets as a traced one
  does, so `inverse_log_det_jacobian(x)` on the same `x` reads them instead of
  running the flow again. On leaving the outermost scope every eager entry is
  dropped, so no later call sees outputs of weights that have since changed.
  """
  _SCOPE.depth = getattr(_SCOPE, 'depth', 0) + 1
  try:
    yield
  finally:
    _SCOPE.depth -= 1
    if not _SCOPE.depth:
      for storage in _STORAGES:
        _drop_eager_entries(storage)


def _drop_eager_entries(storage):
  for key in list(storage):
    if not any(tf.is_symbolic_tensor(t) for t in tf.nest.flatten(key())):
      key.cancel()  # Its weakref callback would delete it a second time.
      storage.pop(key, None)


def _cacheable(structure):
  """Whether results for `structure` may be cached and served now."""
  if tf.executing_eagerly():
    return getattr(_SCOPE, 'depth', 0) > 0
  graph = tf.compat.v1.get_default_graph()
  return all(tf.is_symbolic_tensor(t) and t.graph is graph
             for t in tf.nest.flatten(structure))


class GraphOnlyCache(cache_util.BijectorCache):
  """TFP's bijector cache, serving only inputs of the graph being traced."""

  def __init__(self, *args, storage: Optional[dict] = None, **kwargs):
    super().__init__(*args, storage=storage, **kwargs)
    if storage is None:  # A class attribute, not a copy bound by `__get__`.
      _STORAGES.append(self.storage)

  def _lookup(self, input, forward_name, inverse_name, **kwargs):  # pylint: disable=redefined-builtin
    if not _cacheable(input):
      return self._uncached_call(input, forward_name, kwargs)
    return super()._lookup(input, forward_name, inverse_name, **kwargs)

  def _uncached_call(self, input, fn_name, kwargs):  # pylint: disable=redefined-builtin
    return getattr(self.bijector, fn_name)(input, **kwargs)

  def _attributes(self, input, fn_name, **kwargs):  # pylint: disable=redefined-builtin
    if not _cacheable(input):
      return {}
    return super()._attributes(input, fn_name, **kwargs)


class GraphOnlyGreedyCache(GraphOnlyCache,
                           cache_util.BijectorCacheWithGreedyAttrs):
  """Graph-only cache whose wrapped functions also return log-det attributes.

  Uncached calls skip the log-det and run the plain `_forward` / `_inverse`.
  """

  def _uncached_call(self, input, fn_name, kwargs):  # pylint: disable=redefined-builtin
    plain_name = fn_name.replace('_augmented', '')
    return getattr(self.bijector, plain_name)(input, **kwargs)


class GlowBijector(tfp.bijectors.Bijector):
  """Base of the tfp_glow layers: graph-only cache and fused log-dets.

  Subclasses implement TFP's hooks `_forward`, `_inverse` and the log-det hooks.
  A layer whose log-det comes out of the same computation as its output
  (a coupling) overrides `_augmented_forward` / `_augmented_inverse` to return
  `(output, {'ildj': unreduced_ildj})`, and TFP then reads the log-det from the
  cache instead of recomputing it.
  """

  _cache = GraphOnlyGreedyCache(
      forward_name='_augmented_forward', inverse_name='_augmented_inverse')

  def _augmented_forward(self, x, **kwargs):
    return self._forward(x, **kwargs), None

  def _augmented_inverse(self, y, **kwargs):
    return self._inverse(y, **kwargs), None

  @classmethod
  def _parameter_properties(cls, dtype=None, num_classes=None):
    # Parameters are variables owned by the layer, not batched tensors.
    return dict()

  # TFP compares and hashes bijectors by their constructor arguments, so two
  # layers built alike with `seed=None` would be "equal" although they hold
  # different variables, and TFP's cache (keyed partly on the bijector) could
  # serve one layer's output for the other. A layer is only ever itself.
  def __eq__(self, other):
    return self is other

  def __hash__(self):
    return object.__hash__(self)
