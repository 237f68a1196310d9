"""The option vocabulary, and `build_flow` holding every option to it."""

import pytest

from tfp_glow import bijectors as gb
from tfp_glow import flow
from tfp_glow import nn
from tfp_glow import vocabulary


def _build(**kwargs):
  config = dict(num_levels=1, num_steps=1,
                conditioner_fn=nn.glow_conditioner(hidden_channels=8), seed=0)
  config.update(kwargs)
  return flow.build_flow((4, 4, 1), **config)


def _layers(bijector, classes):
  """The layers of `bijector` that are exactly of one of `classes`."""
  return [m for m in bijector.submodules if type(m) in classes]


def test_the_vocabulary():
  assert vocabulary.COUPLINGS == ('affine', 'additive', 'spline')
  assert vocabulary.PERMUTATIONS == ('lu', 'conv1x1', 'shuffle', 'reverse')
  assert vocabulary.DEQUANTIZATIONS == ('uniform', 'variational')
  assert vocabulary.NUM_BITS_RANGE == (1, 16)


@pytest.mark.parametrize('argument, value, allowed', [
    ('coupling', 'typo', "'affine', 'additive'"),
    ('coupling', 'Affine', "'affine', 'additive'"),
    ('permutation', 'typo', "'lu', 'conv1x1', 'shuffle', 'reverse'"),
    ('permutation', None, "'lu', 'conv1x1', 'shuffle', 'reverse'"),
])
def test_build_flow_rejects_unknown_names(argument, value, allowed):
  """Before: `permutation='typo'` silently built a ChannelReverse."""
  with pytest.raises(ValueError) as error:
    _build(**{argument: value})
  message = str(error.value)
  assert f'`{argument}`' in message
  assert allowed in message
  assert f'got {value!r}' in message


@pytest.mark.parametrize('num_bits', [0, -3, 17, 32])
def test_build_flow_rejects_num_bits_out_of_range(num_bits):
  with pytest.raises(ValueError,
                     match=rf'`num_bits` must be an int in \[1, 16\]; '
                     rf'got num_bits={num_bits}\.'):
    _build(num_bits=num_bits)


@pytest.mark.parametrize('num_bits', [8.0, True, '8'])
def test_build_flow_rejects_num_bits_not_an_int(num_bits):
  with pytest.raises(TypeError, match=r'`num_bits` must be an int; got '):
    _build(num_bits=num_bits)


@pytest.mark.parametrize('num_bits', [1, 16])
def test_check_num_bits_takes_both_ends(num_bits):
  assert vocabulary.check_num_bits(num_bits) == num_bits


def test_checks_name_the_argument_they_are_given():
  with pytest.raises(ValueError, match=r'`--n-bits` must be an int in'):
    vocabulary.check_num_bits(20, name='--n-bits')
  with pytest.raises(ValueError, match=r"`dequantization` must be one of "
                     r"'uniform', 'variational'; got 'flow'"):
    vocabulary.check_dequantization('flow')


_PERMUTATION_LAYERS = {
    'lu': gb.InvertibleConv1x1, 'conv1x1': gb.InvertibleConv1x1,
    'shuffle': gb.ChannelShuffle, 'reverse': gb.ChannelReverse,
}
_COUPLING_LAYERS = {'affine': gb.AffineCoupling,
                    'additive': gb.AdditiveCoupling,
                    'spline': gb.SplineCoupling}


def test_every_name_has_a_layer():
  """The tables here cover the vocabulary, so the tests below cover it too."""
  assert set(_PERMUTATION_LAYERS) == set(vocabulary.PERMUTATIONS)
  assert set(_COUPLING_LAYERS) == set(vocabulary.COUPLINGS)


@pytest.mark.parametrize('permutation', vocabulary.PERMUTATIONS)
def test_each_permutation_name_builds_its_layer(permutation):
  mixing, = _layers(_build(permutation=permutation),
                    set(_PERMUTATION_LAYERS.values()))
  assert type(mixing) is _PERMUTATION_LAYERS[permutation]
  if isinstance(mixing, gb.InvertibleConv1x1):
    assert mixing.lu_decomposed == (permutation == 'lu')


@pytest.mark.parametrize('coupling', vocabulary.COUPLINGS)
def test_each_coupling_name_builds_its_layer(coupling):
  # Exact types: Split is an AffineCoupling too (a one-level flow has none).
  layer, = _layers(_build(coupling=coupling), set(_COUPLING_LAYERS.values()))
  assert type(layer) is _COUPLING_LAYERS[coupling]


def test_one_name_for_the_bit_depth_and_the_old_one_still_works():
  """`num_bits` everywhere; `n_bits` (v0.1) is still read, with a warning."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfp_glow import data, presets  # pylint: disable=g-import-not-at-top
  with pytest.warns(DeprecationWarning, match='`n_bits` is deprecated'):
    old = next(iter(data.load('mnist_offline', 'test', batch_size=4,
                              n_bits=5, num_examples=4)))
  new = next(iter(data.load('mnist_offline', 'test', batch_size=4,
                            num_bits=5, num_examples=4)))
  np.testing.assert_array_equal(old, new)
  assert int(np.max(new)) < 32
  values = presets.get('mnist_offline').to_dict()
  assert 'num_bits' in values and 'n_bits' not in values
  values['n_bits'] = values.pop('num_bits') - 3  # A v0.1 run's config.json.
  assert presets.Config.from_dict(values).num_bits == 5
  with pytest.raises(ValueError, match=r'`num_bits` must be an int in '
                     r'\[1, 8\]; got num_bits=9'):
    presets.replace(presets.get('mnist_offline'), num_bits=9)
