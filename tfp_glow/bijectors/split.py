"""The multi-scale split with its learned conditional prior (Glow section 3)."""

from typing import Optional, Sequence

import tensorflow as tf

from tfp_glow import nn
from tfp_glow.bijectors import affine_coupling

__all__ = ['Split']


class Split(affine_coupling.AffineCoupling):
  """Factors out half the channels under a prior conditioned on the other half.

  At the end of each level but the last, openai/glow's `split2d` keeps
  `h1 = h[..., :C // 2]` and models the factored-out `h2 = h[..., C // 2:]` as
  `h2 ~ N(mean(h1), exp(logs(h1)))`. Here that prior is an affine bijector of
  standard-normal noise `eps`, so the whole model stays a single bijector over
  N(0, I):

  ```none
  mean, logs = net(h1)[..., 0::2], net(h1)[..., 1::2]
  inverse:  eps = (h2 - mean) * exp(-logs)           (the paper's f)
  forward:  h2  = mean + exp(logs) * eps              (sampling)
  fldj      = sum over H, W, C/2 of logs
  ```

  The output keeps the shape `[..., H, W, C]`: `eps` takes the place of `h2`,
  and later levels act only on the leading channels (see `ActiveChannels`).
  The default network is openai/glow's zero-initialised 3x3 convolution, so the
  prior starts as N(0, 1).

  Args:
    channels: Python `int` >= 2, the number of channels C.
    conditioner_fn: factory `fn(in_channels, out_channels, *, dtype, seed)`.
      Default value: `nn.zero_conditioner`.
    seed: Python `int` or `None`. Default value: `None`.
    dtype: float dtype of the variables. Default value: `tf.float32`.
    validate_args: Python `bool`. Default value: `False`.
    name: Python `str`. Default value: `'split'`.
    context_shape: `None`, `(D,)` or `(H, W, c)`: a conditional prior
      `N(mean(h1, context), exp(logs(h1, context)))`; every call then takes
      `context=` (see `AffineCoupling`). Default value: `None`.

  Raises:
    TypeError, ValueError: if `channels` is not an int >= 2 or
      `conditioner_fn` is not callable.

  #### Examples

  >>> split = Split(channels=4)
  >>> h = tf.random.normal([2, 8, 8, 4], seed=1)
  >>> bool(tf.reduce_all(split.inverse(h) == h))  # N(0, 1) prior at init
  True

  #### References

  [1]: Diederik P. Kingma, Prafulla Dhariwal. Glow: Generative Flow with
       Invertible 1x1 Convolutions. https://arxiv.org/abs/1807.03039
  [2]: Laurent Dinh, Jascha Sohl-Dickstein, Samy Bengio. Density estimation
       using Real NVP (multi-scale architecture).
       https://arxiv.org/abs/1605.08803
  """

  def __init__(self, channels: int,
               conditioner_fn: Optional[nn.ConditionerFn] = None,
               seed: Optional[int] = None, dtype: tf.DType = tf.float32,
               validate_args: bool = False, name: str = 'split',
               context_shape: Optional[Sequence[int]] = None):
    parameters = dict(locals())
    super().__init__(
        channels, conditioner_fn or nn.zero_conditioner, seed=seed,
        dtype=dtype, validate_args=validate_args, name=name,
        parameters=parameters, context_shape=context_shape)

  def _shift_and_log_scale(self, mean, logs):
    # eps = (h2 - mean) * exp(-logs): shift -mean, log-scale -logs.
    return -mean, -logs
