"""Runs the data-dependent initialisation of every layer of a flow."""

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ['data_init']


def data_init(bijector: tfp.bijectors.Bijector, x: tf.Tensor,
              **kwargs) -> tf.Tensor:
  """Initialises `bijector`'s layers from the data-side batch `x`.

  Walks the flow in the paper's direction (data to latent). Every layer with a
  `data_init(x)` method (ActNorm, couplings with ActNorm in their networks,
  `ActiveChannels`) initialises itself from the input it receives and passes on
  its inverse output; other layers just apply `inverse`. Layers already
  initialised keep their values, so the walk is idempotent.

  Args:
    bijector: a tfp_glow layer or a `tfb.Chain` of them.
    x: a data-side batch `[N, H, W, C]`.
    **kwargs: keyword arguments of the bijector (routed by name in chains).

  Returns:
    `bijector.inverse(x)` after initialisation.
  """
  if isinstance(bijector, tfp.bijectors.Composition):
    for part in bijector.bijectors:  # bijectors[0] is the data side.
      x = data_init(part, x, **kwargs.get(part.name, {}))
    return x
  if hasattr(bijector, 'data_init'):
    return bijector.data_init(x, **kwargs)
  return bijector.inverse(x, **kwargs)
