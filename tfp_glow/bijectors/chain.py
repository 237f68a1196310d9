"""`tfb.Chain` whose cache cannot serve outputs computed with old weights."""

from tensorflow_probability.python.bijectors import chain as tfp_chain

from tfp_glow.bijectors import _base

__all__ = ['Chain']


class Chain(tfp_chain._Chain):  # pylint: disable=protected-access
  """`tfb.Chain` with tfp_glow's graph-only cache.

  The base is the class `tfb.Chain(...)` itself returns for bijectors that hold
  variables (TFP's non-CompositeTensor `_Chain`).

  TFP's cache is keyed on the input tensor; in eager mode it would return the
  output computed before a training step for a tensor seen before. This
  subclass caches only while a graph is traced (see `_base.GraphOnlyCache`);
  everything else is `tfb.Chain`: `bijectors[0]` is applied last in `forward`
  and first in `inverse`, and keyword arguments are routed by bijector name.
  A chain equals only itself (see `GlowBijector`), and `copy()` chains the
  same layers, as `tfb.Chain.copy()` does.

  #### Examples

  >>> from tfp_glow.bijectors import ActNorm
  >>> chain = Chain([ActNorm(3)])
  >>> copy = chain.copy()
  >>> copy == chain, copy.bijectors[0] is chain.bijectors[0]
  (False, True)
  """

  _cache = _base.GraphOnlyCache()

  # As in `_base.GlowBijector`: TFP's parameter-based equality would make two
  # chains of alike layers "equal", and TFP's cache (keyed partly on the
  # bijector) could then serve one chain's output for the other.
  def __eq__(self, other):
    return self is other

  def __hash__(self):
    return object.__hash__(self)
