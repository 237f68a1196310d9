"""Bad arguments fail early, with a message naming the argument and value."""

import pytest
import tensorflow as tf

from tfp_glow import bijectors as gb
from tfp_glow import nn

# Good arguments beside `small_glow`'s 2 levels and 8 hidden channels.
GOOD = dict(num_steps=2, seed=None)


@pytest.mark.parametrize('image_shape,overrides,error,match', [
    ((28, 28, 1), dict(num_levels=3), ValueError,
     r'`image_shape` height and width must be divisible by 2\*\*num_levels = 8;'
     r' got image_shape=\(28, 28, 1\) with num_levels=3'),
    ((8, 8), {}, ValueError, r'`image_shape` must have 3 entries'),
    ((8, 8, 0), {}, ValueError, r'`image_shape\[2\] \(C\)` must be >= 1'),
    (8, {}, TypeError, r'`image_shape` must be a sequence'),
    ((8, 8, 1), dict(num_levels=0), ValueError, r'`num_levels` must be >= 1'),
    ((8, 8, 1), dict(num_steps=2.5), TypeError,
     r'`num_steps` must be an int; got 2.5'),
    ((8, 8, 1), dict(hidden_channels=-4), ValueError,
     r'`hidden_channels` must be >= 1; got hidden_channels=-4'),
    ((8, 8, 1), dict(coupling='affin'), ValueError,
     r"`coupling` must be one of 'affine', 'additive', 'spline'; got 'affin'"),
    ((8, 8, 1), dict(permutation='invconv'), ValueError,
     r"`permutation` must be one of 'lu', 'conv1x1', 'shuffle', 'reverse'"),
    ((8, 8, 1), dict(num_classes=1), ValueError,
     r'`num_classes` must be >= 2; got num_classes=1'),
    ((8, 8, 1), dict(num_bits=17), ValueError,
     r'`num_bits` must be an int in \[1, 16\]; got num_bits=17'),
    ((8, 8, 1), dict(num_bits=True), TypeError, r'`num_bits` must be an int'),
    ((8, 8, 1), dict(dtype=tf.float16), ValueError,
     r'`dtype` must be tf.float32 or tf.float64; got float16'),
])
def test_bad_glow_arguments(image_shape, overrides, error, match, small_glow):
  with pytest.raises(error, match=match):
    small_glow(image_shape, **dict(GOOD, **overrides))


def test_unknown_keyword_is_rejected(small_glow):
  glow = small_glow(**GOOD)
  with pytest.raises(TypeError, match=r"Unexpected keyword arguments \['label'\]"):
    glow.log_prob(tf.zeros([1, 8, 8, 1]), label=3)


def test_labels_on_an_unconditional_model_are_rejected(small_glow):
  with pytest.raises(ValueError, match='built without `num_classes`'):
    small_glow(**GOOD).log_prob(tf.zeros([1, 8, 8, 1]), labels=[1])


@pytest.mark.parametrize('make,error,match', [
    (lambda: gb.ActNorm(0), ValueError, r'`channels` must be >= 1; got '
     r'channels=0'),
    (lambda: gb.ActNorm('4'), TypeError, r"`channels` must be an int; got '4'"),
    (lambda: gb.InvertibleConv1x1(4, lu_decomposed='yes'), TypeError,
     r"`lu_decomposed` must be a bool; got 'yes'"),
    (lambda: gb.AffineCoupling(1), ValueError, r'`channels` must be >= 2'),
    (lambda: gb.AdditiveCoupling(4, conditioner_fn=3), TypeError,
     r'`conditioner_fn` must be callable'),
    (lambda: gb.ChannelPermutation([0, 2]), ValueError,
     r'`permutation` must be a permutation of range\(C\); got \[0, 2\]'),
    (lambda: gb.TopPrior((2, 2)), ValueError,
     r'`event_shape` must have 3 entries'),
    (lambda: gb.ActiveChannels(gb.ActNorm(2), channels=0), ValueError,
     r'`channels` must be >= 1'),
    (lambda: nn.glow_conditioner(0), ValueError, r'`hidden_channels` must be'),
])
def test_bad_layer_arguments(make, error, match):
  with pytest.raises(error, match=match):
    make()


def test_wrong_channel_count_at_call_time():
  layer = gb.AffineCoupling(4, nn.glow_conditioner(8))
  with pytest.raises(ValueError, match=r'AffineCoupling was built for 4 '
                     r'channels; got a tensor of shape \(1, 4, 4, 6\)'):
    layer.inverse(tf.zeros([1, 4, 4, 6]))


def test_odd_image_size_at_squeeze():
  with pytest.raises(ValueError, match='Squeeze.inverse needs an even height'):
    gb.Squeeze().inverse_event_shape([5, 4, 3])
