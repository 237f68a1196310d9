"""Variational dequantization (Flow++): a learned noise density q(u | x)."""

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow import _hardware
from tfp_glow import _inputs
from tfp_glow import _validation
from tfp_glow import bijectors as gb
from tfp_glow import flow
from tfp_glow import nn
from tfp_glow import vocabulary
from tfp_glow.bijectors import _base
from tfp_glow.bijectors import initialize

__all__ = ['VariationalDequantizer']

TensorLike = tf.types.experimental.TensorLike
tfd = tfp.distributions

# The standard deviation of a standard logistic, whose sigmoid is U(0, 1).
_LOGISTIC_STD = math.pi / math.sqrt(3.0)


class VariationalDequantizer(tf.Module):
  """q(u | x) on [0, 1)^D: a conditional Glow over logits, then a sigmoid.

  Uniform dequantization fits a density to `x + u`, `u ~ U[0, 1)^D`, and
  its bits/dim bound the discrete model's only loosely; Flow++ (Ho et al.
  2019) learns the noise instead and trains the variational bound

  ```none
  log P(x) >= E_q[log p(x + u) - log q(u | x)]
  eps ~ N(0, I)                                  [N, H, W, C]
  u   = sigmoid(a * unsqueeze(f(eps; context)))  in [0, 1)^D
  log q(u | x) = log N(eps) - log|det du / deps|
  context = squeeze(x / 2**num_bits - 0.5)       [N, H/2, W/2, 4C]
  ```

  `f` is a one-level conditional Glow (`flow.build_flow` with
  `context_shape`, ActNorm, LU 1x1 convolutions and affine couplings, its
  top prior conditioned on the context too) run in its data-to-latent
  direction: there an affine coupling multiplies by its sigmoid scale, so a
  sample's logits stay bounded while q trains (the sampling direction
  divides by it, and a scale near 0 sent logits to the hundreds and log q to
  infinity at the presets' learning rate). `a = pi / sqrt(3)` gives the
  logits at init the variance of a logistic, whose sigmoid is uniform, so
  q starts close to the uniform dequantization it replaces. The context is
  `x` squeezed to the flow's resolution, so every network sees every pixel
  of `x` (resizing would average them away). The sigmoid's log-det is TFP's
  `tfb.Sigmoid`, stable for any logit; a sample that rounds to 1.0 in
  floating point is set to the largest value below 1, so that `x + u` stays
  below `x + 1`. The dequantizer's variables are trained with the Glow's.

  Args:
    image_shape: `(H, W, C)`, H and W even.
    num_bits: Python `int`, bits per pixel value of `x`. Default value: `8`.
    num_steps: Python `int`, flow steps of `g`. Default value: `4`.
    hidden_channels: Python `int`, width of `g`'s networks. Default value:
      `32`.
    dtype: `tf.float32` or `tf.float64`. Default value: `tf.float32`.
    compute_dtype: `None`, `tf.bfloat16`, `tf.float16` or `'auto'`, as in
      `Glow`.
      Default value: `None`.
    seed: Python `int` or `None`. Default value: `None`.
    name: Python `str`. Default value: `'variational_dequantizer'`.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> q = VariationalDequantizer((8, 8, 1), num_steps=1, hidden_channels=8,
  ...                            seed=0)
  >>> images = tf.floor(tf.random.uniform([4, 8, 8, 1], 0.0, 256.0, seed=1))
  >>> q.initialize(images, seed=(1, 2))
  >>> u, log_q = q.sample_and_log_prob(images, seed=(3, 4))
  >>> u.shape, log_q.shape
  (TensorShape([4, 8, 8, 1]), TensorShape([4]))
  >>> bool(tf.reduce_all((u >= 0.0) & (u < 1.0)))
  True

  #### References

  [1]: Jonathan Ho, Xi Chen, Aravind Srinivas, Yan Duan, Pieter Abbeel.
       Flow++: Improving Flow-Based Generative Models with Variational
       Dequantization and Architecture Design. ICML 2019.
       https://arxiv.org/abs/1902.00275
  """

  def __init__(self, image_shape: Sequence[int], *, num_bits: int = 8,
               num_steps: int = 4, hidden_channels: int = 32,
               dtype: tf.DType = tf.float32,
               compute_dtype: Optional[tf.DType] = None,
               seed: Optional[int] = None,
               name: str = 'variational_dequantizer'):
    super().__init__(name=name)
    image_shape = _validation.image_shape(image_shape)
    if image_shape[0] % 2 or image_shape[1] % 2:
      raise ValueError('`image_shape` height and width must be even (the '
                       f'flow squeezes once); got image_shape={image_shape}.')
    self._config = dict(
        image_shape=list(image_shape),
        num_bits=vocabulary.check_num_bits(num_bits),
        num_steps=_validation.positive_int('num_steps', num_steps),
        hidden_channels=_validation.positive_int('hidden_channels',
                                                 hidden_channels),
        dtype=_validation.float_dtype(dtype).name,
        compute_dtype=_hardware.check_compute_dtype(compute_dtype),
        seed=seed)
    self._image_shape = image_shape
    self._num_bits = num_bits
    self._dtype = tf.as_dtype(dtype)
    height, width, channels = image_shape
    self._context_shape = (height // 2, width // 2, 4 * channels)
    self._flow = flow.build_flow(
        image_shape, num_levels=1, num_steps=num_steps,
        conditioner_fn=nn.glow_conditioner(
            hidden_channels, _hardware.resolve_compute_dtype(compute_dtype)),
        num_bits=num_bits, dtype=self._dtype, seed=seed,
        context_shape=self._context_shape, pixel_space=False)
    # forward: eps -> f(eps) -> logits -> u; bijectors[0] is applied last.
    self._bijector = gb.Chain(
        [tfp.bijectors.Sigmoid(),
         tfp.bijectors.Scale(tf.constant(_LOGISTIC_STD, self._dtype)),
         gb.Squeeze(), tfp.bijectors.Invert(self._flow)],
        name='dequantizer_flow')
    self._latent_shape = tf.TensorShape(image_shape)
    self._below_one = float(np.nextafter(
        np.array(1.0, self._dtype.as_numpy_dtype), 0.0))

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    return self._image_shape

  @property
  def latent_shape(self) -> tf.TensorShape:
    """Shape of one `eps`, the image shape `[H, W, C]`."""
    return self._latent_shape

  @property
  def bijector(self) -> tfp.bijectors.Bijector:
    """The map eps -> u (`forward`), a `tfb.Chain` ending in a sigmoid."""
    return self._bijector

  @property
  def is_initialized(self) -> bool:
    flags = [m.initialized for m in self.submodules
             if isinstance(getattr(m, 'initialized', None), tf.Variable)]
    return all(bool(v.numpy()) for v in flags)

  def get_config(self) -> dict:
    """The constructor arguments, JSON-serialisable."""
    return dict(self._config)

  @classmethod
  def from_config(cls, config: dict) -> 'VariationalDequantizer':
    config = dict(config)
    return cls(tuple(config.pop('image_shape')), **config)

  def context(self, images: TensorLike) -> tf.Tensor:
    """The context of q: `images` scaled to [-0.5, 0.5) and squeezed."""
    x = tf.cast(images, self._dtype) / 2.0**self._num_bits - 0.5
    return tf.nn.space_to_depth(x, 2)

  def initialize(self, images: TensorLike, seed=None) -> None:
    """Data-dependent init of `f`'s ActNorms, on noise draws for `images`.

    `f` runs data-to-latent on `eps ~ N(0, I)`, so the walk of
    `initialize.data_init` is the sampling pass of q: its ActNorms scale
    their inputs to unit variance, and the logits start at the logistic's
    variance (see the class docstring). Layers already initialised keep
    their values.
    """
    images = self._checked(images, 'VariationalDequantizer.initialize')
    eps = tf.random.stateless_normal(
        tf.shape(images), seed=tfp.random.sanitize_seed(seed),
        dtype=self._dtype)
    initialize.data_init(self._flow, eps,
                         **flow.context_kwargs(self._flow,
                                               self.context(images)))

  def from_noise(self, eps: TensorLike,
                 images: TensorLike) -> Tuple[tf.Tensor, tf.Tensor]:
    """`(u, log q(u | images))` of latent noise `eps` `[N, *latent_shape]`."""
    images = self._checked(images, 'VariationalDequantizer.from_noise')
    eps = tf.convert_to_tensor(eps, self._dtype, name='eps')
    _inputs.check_event_shape('eps', eps, self._latent_shape,
                              'VariationalDequantizer.from_noise', 1)
    kwargs = self._kwargs(images)
    with _base.single_pass():
      u = self._bijector.forward(eps, **kwargs)
      fldj = self._bijector.forward_log_det_jacobian(eps, 3, **kwargs)
    log_q = self._base_log_prob(eps) - fldj
    return tf.minimum(u, self._below_one), log_q

  def sample_and_log_prob(self, images: TensorLike,
                          seed=None) -> Tuple[tf.Tensor, tf.Tensor]:
    """Draws `u ~ q(u | images)`: `(u [N, H, W, C], log q [N])`.

    Differentiable in q's variables (reparameterised), so that the bound
    trains q. `seed` is a TFP seed (a stateless pair gives the same draw).
    """
    images = self._checked(images, 'VariationalDequantizer.sample')
    shape = tf.concat([tf.shape(images)[:1], self._latent_shape], 0)
    eps = tf.random.stateless_normal(
        shape, seed=tfp.random.sanitize_seed(seed), dtype=self._dtype)
    return self.from_noise(eps, images)

  def log_prob(self, u: TensorLike, images: TensorLike) -> tf.Tensor:
    """log q(u | images) of noise `u` in (0, 1)^D, `[N]`."""
    where = 'VariationalDequantizer.log_prob'
    images = self._checked(images, where)
    u = tf.convert_to_tensor(u, self._dtype, name='u')
    _inputs.check_event_shape('u', u, self._image_shape, where, 1)
    kwargs = self._kwargs(images)
    with _base.single_pass():
      eps = self._bijector.inverse(u, **kwargs)
      ildj = self._bijector.inverse_log_det_jacobian(u, 3, **kwargs)
    return self._base_log_prob(eps) + ildj

  def bits_per_dim(self, glow, images: TensorLike, *, num_samples: int = 1,
                   seed=None, labels: Optional[TensorLike] = None,
                   context: Optional[TensorLike] = None) -> tf.Tensor:
    """The variational bound of `glow`'s bits/dim on integer `images`, `[N]`.

    ```none
    -log((1/K) sum_k p(x + u_k) / q(u_k | x)) / (D ln 2),  u_k ~ q(u | x)
    ```

    K = 1 is the training objective (the ELBO in bits, a single sample);
    K > 1 the importance-weighted bound with q as its proposal, tighter as K
    grows (a stable log-mean-exp; K times the memory of one batch).

    Args:
      glow: the `tfp_glow.Glow` whose density is bounded.
      images: integer pixel values `[N, H, W, C]`.
      num_samples: Python `int` K >= 1. Default value: `1`.
      seed: TFP seed of the K draws. Default value: `None`.
      labels: class ids `[N]` of a class-conditional Glow.
      context: `[N, *context_shape]` of a conditional Glow.
    """
    num_samples = _validation.positive_int('num_samples', num_samples)
    images = self._checked(images, 'VariationalDequantizer.bits_per_dim')
    batch = tf.shape(images)[0]
    tiled = _tile(images, num_samples)
    u, log_q = self.sample_and_log_prob(tiled, seed)
    log_p = glow.log_prob(tiled + u, labels=_tile(labels, num_samples),
                          context=_tile(context, num_samples))
    weights = tf.reshape(log_p - log_q, [num_samples, batch])
    bound = tf.reduce_logsumexp(weights, axis=0) - math.log(num_samples)
    return -bound / (math.prod(self._image_shape) * math.log(2.0))

  def _base_log_prob(self, eps):
    normal = tfd.Normal(tf.zeros([], self._dtype), tf.ones([], self._dtype))
    return tf.reduce_sum(normal.log_prob(eps), axis=[-3, -2, -1])

  def _kwargs(self, images):
    return flow.context_kwargs(self._bijector, self.context(images))

  def _checked(self, images, where):
    images = tf.convert_to_tensor(images, name='images')
    _inputs.check_event_shape('images', images, self._image_shape, where, 1)
    return tf.cast(images, self._dtype)


def _tile(t, k):
  """`[k * N, ...]`: `t` (`[N, ...]`, or `None`) repeated k times."""
  if t is None or k == 1:
    return t
  t = tf.convert_to_tensor(t)
  event = t.shape[1:]
  event = event.as_list() if event.is_fully_defined() else tf.shape(t)[1:]
  return tf.reshape(tf.broadcast_to(t, tf.concat([[k], tf.shape(t)], 0)),
                    tf.concat([[-1], event], 0))
