"""Builds Glow's multi-scale flow as one `tfb.Chain` of tfp_glow layers."""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow import _context
from tfp_glow import bijectors as gb
from tfp_glow import nn
from tfp_glow import vocabulary

__all__ = ['build_flow', 'context_kwargs', 'TOP_PRIOR', 'TEMPERATURE']

TOP_PRIOR = 'top_prior'
TEMPERATURE = 'temperature'

# One entry per name of `vocabulary.COUPLINGS` / `vocabulary.PERMUTATIONS`
# (tests/test_vocabulary.py builds a flow for each name). Lookups never fall
# through to a default: `build_flow` rejects other names first.
_COUPLINGS = {'affine': gb.AffineCoupling, 'additive': gb.AdditiveCoupling,
              'spline': gb.SplineCoupling}

_PERMUTATIONS = {
    'lu': lambda channels, seed, dtype: gb.InvertibleConv1x1(
        channels, True, seed, dtype),
    'conv1x1': lambda channels, seed, dtype: gb.InvertibleConv1x1(
        channels, False, seed, dtype),
    'shuffle': lambda channels, seed, dtype: gb.ChannelShuffle(channels, seed),
    'reverse': lambda channels, seed, dtype: gb.ChannelReverse(channels),
}


def _steps(channels, num_steps, coupling, permutation, conditioner_fn, rng,
           dtype, recompute, context_shape):
  """`num_steps` x [ActNorm, permutation, coupling], data side first.

  With `recompute`, each step is one `Recompute` block (gradient
  checkpointing: its activations are recomputed in the backward pass).
  """
  layers = []
  for _ in range(num_steps):
    seeds = rng.integers(2**31, size=2)
    step = [
        gb.ActNorm(channels, dtype),
        _PERMUTATIONS[permutation](channels, seeds[0], dtype),
        _COUPLINGS[coupling](channels, conditioner_fn, seed=seeds[1],
                             dtype=dtype, context_shape=context_shape),
    ]
    layers += [gb.Recompute(gb.Chain(step))] if recompute else step
  return layers


def build_flow(image_shape: Sequence[int], *, num_levels: int,
               num_steps: int, conditioner_fn: nn.ConditionerFn,
               coupling: str = 'affine', permutation: str = 'lu',
               learn_top: bool = True, num_classes: Optional[int] = None,
               num_bits: int = 8, dtype: tf.DType = tf.float32,
               seed: Optional[int] = None,
               recompute_gradients: bool = False,
               context_shape: Optional[Sequence[int]] = None,
               pixel_space: bool = True) -> gb.Chain:
  """Glow's multi-scale flow from N(0, I) latents to pixels in [0, 2**num_bits).

  In the paper's direction (`inverse`, data to latent), the chain is:

  ```none
  x / 2**num_bits - 0.5                       (TFP Scale and Shift)
  for each level l = 0 .. L-1:
    squeeze                                   (all channels)
    K x [ActNorm, permutation, coupling]      (on the active channels)
    split with learned prior (all but last)   (half become N(0, 1) noise)
  top prior (learned / class-conditional)     (on the active channels)
  temperature                                 (identity unless given)
  ```

  Levels after the first act on the leading channels only (`ActiveChannels`),
  since `Squeeze` keeps factored-out noise behind them. The latent has shape
  `[H / 2**L, W / 2**L, C * 4**L]`. Arguments are as in `tfp_glow.Glow`, which
  validates the rest of them.

  With `pixel_space=False` the first step (the scaling of pixels) is left
  out: the flow maps N(0, I) latents to unbounded values of the image's
  shape (the variational dequantizer's logits, `tfp_glow.dequantizer`).

  With `context_shape`, every coupling, split and the top prior is built
  conditional, with the context's shape at its level's resolution (see
  `tfp_glow._context`); `context_kwargs` routes a context to all of them.

  Raises:
    ValueError: if `coupling` is not in `vocabulary.COUPLINGS`, `permutation`
      not in `vocabulary.PERMUTATIONS`, or `num_bits` is outside
      `vocabulary.NUM_BITS_RANGE`.
    TypeError: if `num_bits` is not an int.

  #### Examples

  >>> from tfp_glow import nn
  >>> build_flow((8, 8, 1), num_levels=1, num_steps=1,
  ...            conditioner_fn=nn.glow_conditioner(8), permutation='typo')
  Traceback (most recent call last):
    ...
  ValueError: `permutation` must be one of 'lu', 'conv1x1', 'shuffle', 'reverse'; got 'typo'.
  """
  vocabulary.check_coupling(coupling)
  vocabulary.check_permutation(permutation)
  vocabulary.check_num_bits(num_bits)
  context_shape = _context.check_context_shape(context_shape)
  rng = np.random.default_rng(seed)
  pixel_scale = tf.constant(2.0**num_bits, dtype)
  layers = [tfp.bijectors.Scale(pixel_scale),
            tfp.bijectors.Shift(tf.constant(0.5, dtype))] if pixel_space else []
  for level in range(num_levels):
    active = image_shape[-1] * 4 * 2**level  # Channels the level transforms.
    level_context = _context.level_shape(
        context_shape, image_shape[0] // 2**(level + 1),
        image_shape[1] // 2**(level + 1))
    level_layers = [gb.Squeeze()] if level == 0 else []
    level_layers += _steps(active, num_steps, coupling, permutation,
                           conditioner_fn, rng, dtype, recompute_gradients,
                           level_context)
    if level < num_levels - 1:
      level_layers.append(gb.Split(active, seed=rng.integers(2**31),
                                   dtype=dtype, context_shape=level_context))
    if level == 0:
      layers += level_layers
    else:
      layers += [gb.Squeeze(),
                 gb.ActiveChannels(gb.Chain(level_layers), active,
                                   name=f'level_{level}')]
  if learn_top or num_classes or context_shape:
    scale = 2**num_levels
    top_shape = (image_shape[0] // scale, image_shape[1] // scale, active)
    prior = gb.TopPrior(top_shape, num_classes, learn_top, dtype,
                        context_shape=level_context)
    layers.append(gb.ActiveChannels(prior, top_shape[-1], name=TOP_PRIOR))
  layers.append(gb.Temperature(name=TEMPERATURE))
  return gb.Chain(layers, name='glow_flow')


def context_kwargs(bijector: tfp.bijectors.Bijector,
                   context: tf.Tensor) -> dict:
  """Keyword arguments that give `context` to every conditional layer.

  Walks `bijector` (a chain of `build_flow`, or any tfp_glow layer): a layer
  with a `context_shape` gets `{'context': c}` with `c` the context at that
  layer's shape (an image context resized once per resolution, see
  `_context.at_resolution`); a `tfb.Chain` gets its parts' keyword arguments
  keyed by their names, as `tfb.Chain` routes them; `ActiveChannels`,
  `Recompute` and `tfb.Invert` pass theirs on to the bijector they wrap.

  Returns:
    The keyword arguments for `bijector`'s calls (`{}` if no layer takes a
    context).
  """
  resized = {}

  def at(shape):
    if shape not in resized:
      resized[shape] = _context.at_resolution(context, shape)
    return resized[shape]

  return _walk(bijector, at)


# `tfb.Invert(b)` of a `b` that is not a CompositeTensor (ours hold
# variables) is an instance of a class that is not a subclass of `tfb.Invert`;
# both are matched here through public calls only.
_INVERTS = (tfp.bijectors.Invert, type(tfp.bijectors.Invert(gb.Squeeze())))


def _walk(bijector, context_at):
  if isinstance(bijector, tfp.bijectors.Composition):
    routed = {}
    for part in bijector.bijectors:
      part_kwargs = _walk(part, context_at)
      if part_kwargs:
        # tfb.Chain routes by name: parts of one name must want the same.
        if part.name in routed and (
            _shapes_of(routed[part.name]) != _shapes_of(part_kwargs)):
          raise ValueError(f'Two layers named {part.name!r} in one chain '
                           'take contexts of different shapes; name them '
                           'apart.')
        routed[part.name] = part_kwargs
    return routed
  if isinstance(bijector, (gb.ActiveChannels, gb.Recompute) + _INVERTS):
    return _walk(bijector.bijector, context_at)
  shape = getattr(bijector, 'context_shape', None)
  return {} if shape is None else {'context': context_at(shape)}


def _shapes_of(kwargs):
  return tf.nest.map_structure(lambda t: tuple(t.shape), kwargs)
