"""Additive coupling layer (NICE; Glow section 3.3)."""

from typing import Optional, Sequence

import tensorflow as tf

from tfp_glow import nn
from tfp_glow.bijectors import _coupling

__all__ = ['AdditiveCoupling']


class AdditiveCoupling(_coupling.Coupling):
  """Additive coupling: shift half the channels given the other half.

  Forward (sampling, z -> x) and inverse (the paper's f, x -> z), with the
  channels split in halves `[..., :C // 2]` and `[..., C // 2:]`:

  ```none
  inverse:  z2 = x2 + net(x1)
  forward:  x2 = z2 - net(z1)
  ldj      = 0   (volume preserving)
  ```

  The paper uses it for its qualitative CelebA-HQ runs: it cannot blow up
  in the sampling direction. With the default conditioner it starts as the
  identity.

  Args:
    channels: Python `int` >= 2, the number of channels C.
    conditioner_fn: factory `fn(in_channels, out_channels, *, dtype, seed)`
      returning the network; called once with `(C // 2, C - C // 2)`.
      Default value: `nn.glow_conditioner(512)`, the paper's network.
    seed: Python `int` or `None`, seeds the network init. Default value: `None`.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'additive_coupling'`.
    context_shape: `None`, `(D,)` or `(H, W, c)`: a conditional layer (see
      `AffineCoupling`). Default value: `None`.

  Raises:
    TypeError, ValueError: if `channels` is not an int >= 2 or
      `conditioner_fn` is not callable.

  #### Examples

  >>> layer = AdditiveCoupling(4, nn.glow_conditioner(hidden_channels=8))
  >>> x = tf.random.normal([2, 8, 8, 4], seed=1)
  >>> float(layer.forward_log_det_jacobian(x, event_ndims=3))
  0.0

  #### References

  [1]: Laurent Dinh, David Krueger, Yoshua Bengio. NICE: Non-linear
       Independent Components Estimation. https://arxiv.org/abs/1410.8516
  [2]: Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with
       Invertible 1x1 Convolutions. https://arxiv.org/abs/1807.03039
  """

  def __init__(self, channels: int,
               conditioner_fn: Optional[nn.ConditionerFn] = None,
               seed: Optional[int] = None, dtype: tf.DType = tf.float32,
               validate_args: bool = False, name: str = 'additive_coupling',
               context_shape: Optional[Sequence[int]] = None):
    parameters = dict(locals())
    super().__init__(
        channels, conditioner_fn or nn.glow_conditioner(512), 1,
        is_constant_jacobian=True, seed=seed, dtype=dtype,
        validate_args=validate_args, parameters=parameters, name=name,
        context_shape=context_shape)

  def _augmented_forward(self, z, context=None):
    z1, z2 = self._halves(z)
    return tf.concat([z1, z2 - self._params(z1, context)], axis=-1), None

  def _augmented_inverse(self, x, context=None):
    x1, x2 = self._halves(x)
    return tf.concat([x1, x2 + self._params(x1, context)], axis=-1), None

  def _forward_log_det_jacobian(self, z, context=None):
    return tf.zeros([], self.dtype)

  def _inverse_log_det_jacobian(self, x, context=None):
    return tf.zeros([], self.dtype)
