"""What every tfp_glow bijector shares: a cache that cannot go stale.

TFP caches `forward`/`inverse` results keyed on the identity of the input
tensor. Glow's variables change during training, so in eager mode the same
tensor passed twice would get the output computed with the old weights. The
cache below is used only while a graph is being traced (`tf.function`, Keras
`fit`), where it saves real work: the inverse pass of `log_prob` also stores each
layer's log-det ("greedy attributes"), so the log-det never reruns a coupling
network. In eager mode every call computes afresh.
"""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

__all__ = ['GlowBijector', 'GraphOnlyCache', 'GraphOnlyGreedyCache']


class GraphOnlyCache(cache_util.BijectorCache):
  """TFP's bijector cache, active only while tracing a graph."""

  def _lookup(self, input, forward_name, inverse_name, **kwargs):  # pylint: disable=redefined-builtin
    if tf.executing_eagerly():
      return self._eager_call(input, forward_name, kwargs)
    return super()._lookup(input, forward_name, inverse_name, **kwargs)

  def _eager_call(self, input, fn_name, kwargs):  # pylint: disable=redefined-builtin
    return getattr(self.bijector, fn_name)(input, **kwargs)

  def _attributes(self, input, fn_name, **kwargs):  # pylint: disable=redefined-builtin
    if tf.executing_eagerly():
      return {}
    return super()._attributes(input, fn_name, **kwargs)


class GraphOnlyGreedyCache(GraphOnlyCache,
                           cache_util.BijectorCacheWithGreedyAttrs):
  """Graph-only cache whose wrapped functions also return log-det attributes.

  Eager calls skip the log-det and run the plain `_forward` / `_inverse`.
  """

  def _eager_call(self, input, fn_name, kwargs):  # pylint: disable=redefined-builtin
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
