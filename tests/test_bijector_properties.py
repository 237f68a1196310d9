"""Every layer, and the whole Glow flow, through the shared property checker.

All cases run in float64 on tiny events, with zero-initialised parameters
perturbed so the checks are not trivially met by an identity map.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_glow import bijectors as gb
from tfp_glow import flow
from tfp_glow import nn
from tests import bijector_checks
from tests.conftest import make_small_glow

F64 = tf.float64
NET = nn.glow_conditioner(hidden_channels=8)


class _UserNet(tf.Module):
  """A user's conditioner: only `__call__` (no `split_call`, no `data_init`)."""

  def __init__(self, in_channels, out_channels, *, dtype, seed):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.kernel = tf.Variable(
        0.1 * rng.normal(size=(3, 3, in_channels, out_channels)), dtype=dtype)

  def __call__(self, x):
    return tf.nn.conv2d(x, self.kernel, 1, 'SAME')


class _UserContextNet(tf.Module):
  """A user's conditional conditioner: reads an image context, `net(x, c)`."""

  def __init__(self, in_channels, out_channels, *, dtype, seed,
               context_shape):
    super().__init__()
    rng = np.random.default_rng(seed)
    channels = in_channels + context_shape[-1]
    self.kernel = tf.Variable(
        0.1 * rng.normal(size=(3, 3, channels, out_channels)), dtype=dtype)

  def __call__(self, x, context):
    return tf.nn.conv2d(tf.concat([x, context], -1), self.kernel, 1, 'SAME')


def _normal(shape, seed=0):
  return tf.random.stateless_normal(shape, [seed, 7], dtype=F64)


def _initialized(bijector, shape=(3, 4, 4, 4), **kwargs):
  """Runs the data init on a shifted, scaled batch, then perturbs."""
  gb.data_init(bijector, 3.0 + 2.0 * _normal(shape, seed=5), **kwargs)
  bijector_checks.perturb(bijector)
  return bijector


def _perturbed(bijector):
  bijector_checks.perturb(bijector)
  return bijector


def _perturbed_glow(image_shape=(8, 8, 1), **kwargs):
  """A float64 `small_glow` of 2 steps, seed 1, initialised and perturbed."""
  config = dict(num_steps=2, dtype=F64, seed=1)
  config.update(kwargs)
  glow = make_small_glow(image_shape, **config)
  x = tf.random.stateless_uniform((16,) + image_shape, [3, 4], 0.0, 256.0,
                                  dtype=F64)
  context = config.get('context_shape')
  glow.initialize(x, labels=tf.range(16) % 3 if config.get('num_classes')
                  else None,
                  context=None if context is None else _normal(
                      (16,) + tuple(context), seed=6))
  bijector_checks.perturb(glow.bijector, scale=0.02)
  return glow


def _conditional_layer(make, context_shape, shape=(3, 4, 4, 4)):
  """(layer, z, kwargs) of a conditional layer, initialised and perturbed.

  `make(context_shape)` builds the layer; the context of the check is a
  fixed float64 batch, routed by `flow.context_kwargs` as a Glow routes it.
  """
  layer = make(context_shape)
  kwargs = flow.context_kwargs(layer, _normal((shape[0],) + context_shape,
                                              seed=8))
  return _initialized(layer, shape, **kwargs), _normal(list(shape)), kwargs


def _conditional_glow(context_shape, **kwargs):
  """(flow, z, kwargs) of a perturbed conditional Glow at a fixed context."""
  glow = _perturbed_glow(context_shape=context_shape, **kwargs)
  routed = flow.context_kwargs(
      glow.bijector, _normal((3,) + context_shape, seed=9))
  if kwargs.get('num_classes'):
    routed.setdefault(flow.TOP_PRIOR, {})['labels'] = tf.constant([0, 1, 2])
  return glow.bijector, _normal([3] + glow.latent_shape.as_list()), routed


# Each case: (make bijector, latent batch z, kwargs).
CASES = {
    'actnorm': lambda: (_initialized(gb.ActNorm(4, F64)), _normal([3, 4, 4, 4]),
                        {}),
    'conv1x1_lu': lambda: (_initialized(gb.InvertibleConv1x1(4, True, 0, F64)),
                           _normal([3, 4, 4, 4]), {}),
    'conv1x1_plain': lambda: (
        _initialized(gb.InvertibleConv1x1(4, False, 0, F64)),
        _normal([3, 4, 4, 4]), {}),
    'affine_coupling': lambda: (_initialized(gb.AffineCoupling(4, NET, 0, F64)),
                                _normal([3, 4, 4, 4]), {}),
    'affine_coupling_user_net': lambda: (
        _initialized(gb.AffineCoupling(4, _UserNet, 0, F64)),
        _normal([3, 4, 4, 4]), {}),
    'additive_coupling': lambda: (
        _initialized(gb.AdditiveCoupling(4, NET, 0, F64)),
        _normal([3, 4, 4, 4]), {}),
    'affine_coupling_odd_channels': lambda: (
        _initialized(gb.AffineCoupling(3, NET, 0, F64), (3, 4, 4, 3)),
        _normal([3, 4, 4, 3]), {}),
    'split': lambda: (_initialized(gb.Split(4, dtype=F64)),
                      _normal([3, 4, 4, 4]), {}),
    'squeeze': lambda: (gb.Squeeze(), _normal([3, 2, 2, 16]), {}),
    'channel_reverse': lambda: (gb.ChannelReverse(4), _normal([3, 4, 4, 4]),
                                {}),
    'channel_shuffle': lambda: (gb.ChannelShuffle(4, seed=0),
                                _normal([3, 4, 4, 4]), {}),
    'top_prior': lambda: (
        _initialized(gb.TopPrior([2, 2, 4], dtype=F64), (3, 2, 2, 4)),
        _normal([3, 2, 2, 4]), {}),
    'top_prior_class_conditional': lambda: (
        _perturbed(gb.TopPrior([2, 2, 4], num_classes=5, dtype=F64)),
        _normal([3, 2, 2, 4]), {'labels': tf.constant([0, 3, 4])}),
    'temperature': lambda: (gb.Temperature(), _normal([3, 2, 2, 4]),
                            {'temperature': 0.7}),
    'active_channels': lambda: (
        _initialized(gb.ActiveChannels(gb.AffineCoupling(2, NET, 0, F64), 2)),
        _normal([3, 4, 4, 4]), {}),
    'recompute': lambda: (
        _initialized(gb.Recompute(gb.Chain(
            [gb.ActNorm(4, F64), gb.AffineCoupling(4, NET, 0, F64)]))),
        _normal([3, 4, 4, 4]), {}),
    'glow_8x8x1': lambda: (_perturbed_glow().bijector, _normal([3, 2, 2, 16]),
                           {}),
    'glow_8x8x1_recompute_reverse': lambda: (
        _perturbed_glow(recompute_gradients=True,
                        permutation='reverse').bijector,
        _normal([3, 2, 2, 16]), {}),
    'glow_4x4x3_additive_shuffle': lambda: (
        _perturbed_glow(image_shape=(4, 4, 3), coupling='additive',
                        permutation='shuffle').bijector,
        _normal([3, 1, 1, 48]), {}),
    'spline_coupling': lambda: (
        _initialized(gb.SplineCoupling(4, NET, num_bins=5, seed=0, dtype=F64)),
        _normal([3, 4, 4, 4]), {}),
    'spline_coupling_odd_channels_tails': lambda: (
        _initialized(gb.SplineCoupling(3, NET, num_bins=4, bound=1.0, seed=0,
                                       dtype=F64), (3, 4, 4, 3)),
        2.0 * _normal([3, 4, 4, 3]), {}),   # Many values in the linear tails.
    'spline_coupling_image_context': lambda: _conditional_layer(
        lambda c: gb.SplineCoupling(4, NET, num_bins=4, seed=0, dtype=F64,
                                    context_shape=c), (4, 4, 2)),
    'glow_8x8x1_spline': lambda: (
        _perturbed_glow(coupling='spline').bijector, _normal([3, 2, 2, 16]),
        {}),
    # Conditional layers p(. | context), at a fixed context: vector (3,) and
    # image contexts at the layer's resolution.
    'affine_coupling_vector_context': lambda: _conditional_layer(
        lambda c: gb.AffineCoupling(4, NET, 0, F64, context_shape=c), (3,)),
    'affine_coupling_image_context': lambda: _conditional_layer(
        lambda c: gb.AffineCoupling(4, NET, 0, F64, context_shape=c),
        (4, 4, 2)),
    'affine_coupling_user_net_image_context': lambda: _conditional_layer(
        lambda c: gb.AffineCoupling(4, _UserContextNet, 0, F64,
                                  context_shape=c),
        (4, 4, 2)),
    'additive_coupling_vector_context': lambda: _conditional_layer(
        lambda c: gb.AdditiveCoupling(4, NET, 0, F64, context_shape=c), (3,)),
    'split_vector_context': lambda: _conditional_layer(
        lambda c: gb.Split(4, dtype=F64, context_shape=c), (3,)),
    'split_image_context': lambda: _conditional_layer(
        lambda c: gb.Split(4, dtype=F64, context_shape=c), (4, 4, 1)),
    'top_prior_vector_context': lambda: _conditional_layer(
        lambda c: gb.TopPrior([2, 2, 4], dtype=F64, context_shape=c), (3,),
        (3, 2, 2, 4)),
    'top_prior_image_context': lambda: _conditional_layer(
        lambda c: gb.TopPrior([2, 2, 4], dtype=F64, context_shape=c),
        (2, 2, 3), (3, 2, 2, 4)),
    'recompute_vector_context': lambda: _conditional_layer(
        lambda c: gb.Recompute(gb.Chain([
            gb.ActNorm(4, F64),
            gb.AffineCoupling(4, NET, 0, F64, context_shape=c)])), (3,)),
    'active_channels_image_context': lambda: _conditional_layer(
        lambda c: gb.ActiveChannels(
            gb.AffineCoupling(2, NET, 0, F64, context_shape=c), 2),
        (4, 4, 1)),
    'glow_8x8x1_vector_context': lambda: _conditional_glow((3,)),
    'glow_8x8x1_image_context_recompute': lambda: _conditional_glow(
        (4, 4, 2), recompute_gradients=True),
    'glow_8x8x1_larger_image_context_additive': lambda: _conditional_glow(
        (6, 6, 1), coupling='additive'),
    'glow_8x8x1_context_and_labels': lambda: _conditional_glow(
        (3,), num_classes=3),
    'glow_8x8x1_conditional_conv1x1': lambda: (
        _perturbed_glow(num_classes=3, permutation='conv1x1').bijector,
        _normal([3, 2, 2, 16]),
        {'top_prior': {'labels': tf.constant([0, 1, 2])},
         'temperature': {'temperature': 0.8}}),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_bijector_properties(case):
  bijector, z, kwargs = CASES[case]()
  bijector_checks.assert_bijector_properties(bijector, z, kwargs=kwargs)


@pytest.mark.parametrize('case', ['actnorm', 'conv1x1_lu', 'affine_coupling',
                                  'split', 'top_prior', 'glow_8x8x1',
                                  'spline_coupling', 'glow_8x8x1_spline'])
def test_perturbed_layers_are_not_the_identity(case):
  """Guards the checker: the perturbed layers really transform their input."""
  bijector, z, kwargs = CASES[case]()
  y = bijector.forward(z, **kwargs)
  ldj = bijector.forward_log_det_jacobian(z, 3, **kwargs)
  assert y.shape != z.shape or float(tf.reduce_max(tf.abs(y - z))) > 1e-3
  assert float(tf.reduce_max(tf.abs(ldj))) > 1e-3


def test_checker_catches_a_wrong_log_det():
  """A layer whose log-det is off by a constant must fail the checker."""

  class WrongActNorm(gb.ActNorm):

    def _forward_log_det_jacobian(self, z):
      return super()._forward_log_det_jacobian(z) + 0.1

  bijector = _initialized(WrongActNorm(4, F64))
  with pytest.raises(AssertionError, match='fldj'):
    bijector_checks.assert_bijector_properties(bijector, _normal([3, 4, 4, 4]))


def test_eager_calls_are_never_served_stale_by_the_cache():
  """TFP's identity-keyed cache must not return pre-update outputs."""
  layer = _initialized(gb.AffineCoupling(4, NET, 0, F64))
  x = _normal([2, 4, 4, 4])
  before = layer.inverse(x)
  before_ldj = layer.inverse_log_det_jacobian(x, 3)
  bijector_checks.perturb(layer, seed=9)
  assert float(tf.reduce_max(tf.abs(layer.inverse(x) - before))) > 1e-4
  assert float(tf.reduce_max(
      tf.abs(layer.inverse_log_det_jacobian(x, 3) - before_ldj))) > 1e-6


def test_any_batch_shape_in_front():
  layer = _initialized(gb.AffineCoupling(4, NET, 0, F64))
  x = _normal([2, 3, 4, 4, 4])
  z = layer.inverse(x)
  assert z.shape == x.shape
  np.testing.assert_allclose(z[1], layer.inverse(x[1]), atol=1e-12)
  assert layer.inverse_log_det_jacobian(x, 3).shape == (2, 3)


@pytest.mark.parametrize('case', sorted(CASES))
def test_layer_contract(case):
  """`copy()` works and equality is identity, for every layer and the flow."""
  bijector, z, _ = CASES[case]()
  bijector_checks.assert_layer_contract(bijector, z.shape[1:])


# Layers whose initial values come from `seed`, built from it.
SEEDED = {
    'conv1x1_lu': lambda seed: gb.InvertibleConv1x1(4, True, seed, F64),
    'conv1x1_plain': lambda seed: gb.InvertibleConv1x1(4, False, seed, F64),
    'affine_coupling': lambda seed: gb.AffineCoupling(4, NET, seed, F64),
    'additive_coupling': lambda seed: gb.AdditiveCoupling(4, NET, seed, F64),
    'spline_coupling': lambda seed: gb.SplineCoupling(4, NET, seed=seed,
                                                      dtype=F64),
    'split_user_net': lambda seed: gb.Split(4, _UserNet, seed, F64),
    'channel_shuffle': lambda seed: gb.ChannelShuffle(8, seed),
}


@pytest.mark.parametrize('case', sorted(SEEDED))
def test_copy_of_an_int_seeded_layer_starts_where_the_layer_started(case):
  layer = SEEDED[case](3)
  initial = [v.numpy() for v in layer.variables]
  copy = layer.copy()
  assert not bijector_checks._ids(copy.variables) & bijector_checks._ids(  # pylint: disable=protected-access
      layer.variables)
  for v, value in zip(copy.variables, initial):
    np.testing.assert_array_equal(v, value, err_msg=v.name)


@pytest.mark.parametrize('case', sorted(SEEDED))
def test_layers_built_alike_with_seed_none_are_distinct(case):
  """The hard case for TFP's equality: the same arguments, other variables."""
  layer, twin = SEEDED[case](None), SEEDED[case](None)
  bijector_checks.assert_layer_contract(layer, [4, 4, layer.parameters.get(
      'channels', 4)], twin=twin)


def test_tfp_equality_is_by_parameters():
  """Why the contract needs a check: TFP calls alike bijectors equal."""
  tfb = tfp.bijectors
  assert tfb.Scale(2.) == tfb.Scale(2.)
  assert hash(tfb.Scale(2.)) == hash(tfb.Scale(2.))
  assert tfb.Scale(2.) != tfb.Scale(3.)


class _ParameterEqualActNorm(gb.ActNorm):
  """ActNorm with TFP's equality and hash by parameters restored."""
  __eq__ = tfp.bijectors.Bijector.__eq__
  __hash__ = tfp.bijectors.Bijector.__hash__


def test_checker_catches_equality_by_parameters():
  layer = _ParameterEqualActNorm(4, F64)
  with pytest.raises(AssertionError, match='equal to its copy'):
    bijector_checks.assert_layer_contract(layer, [4, 4, 4])


def test_checker_catches_a_copy_that_fails():
  """ChannelReverse's old bug: the subclass recorded its base's arguments."""

  class UnrecordedReverse(gb.ChannelPermutation):

    def __init__(self, channels):
      super().__init__(np.arange(channels)[::-1])

  with pytest.raises(AssertionError, match=r'copy\(\) failed'):
    bijector_checks.assert_layer_contract(UnrecordedReverse(4), [4, 4, 4])


def test_checker_catches_a_copy_sharing_variables():
  shared = gb.ActNorm(4, F64)

  class SharingActNorm(gb.ActNorm):

    def __init__(self, channels, dtype=F64, validate_args=False,
                 name='sharing_act_norm'):
      super().__init__(channels, dtype, validate_args, name)
      self._loc_and_log_scale = shared.loc_and_log_scale

  with pytest.raises(AssertionError, match='shares 1 variables'):
    bijector_checks.assert_layer_contract(SharingActNorm(4), [4, 4, 4])


class _CountingCoupling(gb.AdditiveCoupling):
  """Counts how often the inverse really runs (at trace time)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.inverse_runs = 0

  def _augmented_inverse(self, x):
    self.inverse_runs += 1
    return super()._augmented_inverse(x)


class _ParameterEqualCoupling(_CountingCoupling):
  __eq__ = tfp.bijectors.Bijector.__eq__
  __hash__ = tfp.bijectors.Bijector.__hash__


@pytest.mark.parametrize('cls, confused', [(_CountingCoupling, False),
                                           (_ParameterEqualCoupling, True)])
def test_graph_cache_serves_each_layer_only_its_own_results(cls, confused):
  """TFP's cache still hits for a layer itself, never for an alike layer.

  With TFP's equality by parameters (the control), the second layer is served
  the first one's cached input instead of computing its own inverse.
  """
  first, second = (_perturbed(cls(4, NET, dtype=F64)) for _ in range(2))
  z = _normal([2, 4, 4, 4])

  @tf.function
  def inverses(z):
    x = first.forward(z)
    return first.inverse(x), second.inverse(x), x

  z_first, z_second, x = inverses(z)
  assert first.inverse_runs == 0  # A cache hit: the forward's input.
  np.testing.assert_array_equal(z_first, z)
  assert second.inverse_runs == (0 if confused else 1)
  served_first_input = bool(tf.reduce_all(z_second == z))
  assert served_first_input == confused
  if not confused:
    np.testing.assert_allclose(z_second, second.inverse(x), atol=1e-12)


def test_checker_catches_a_log_det_that_ignores_the_context():
  """A prior whose log-det leaves out the context's share must fail."""

  class ContextBlindPrior(gb.TopPrior):

    def _forward_log_det_jacobian(self, eps, labels=None, context=None):
      return super()._forward_log_det_jacobian(eps, labels,
                                               tf.zeros_like(context))

  bijector, z, kwargs = _conditional_layer(
      lambda c: ContextBlindPrior([2, 2, 4], dtype=F64, context_shape=c),
      (3,), (3, 2, 2, 4))
  with pytest.raises(AssertionError, match='fldj'):
    bijector_checks.assert_bijector_properties(bijector, z, kwargs=kwargs)


def test_checker_catches_a_layer_that_ignores_its_context():
  """The context-gradient check is not met trivially."""

  class ContextBlindCoupling(gb.AffineCoupling):

    def _augmented_forward(self, z, context=None):
      return super()._augmented_forward(z, tf.zeros_like(context))

    def _augmented_inverse(self, x, context=None):
      return super()._augmented_inverse(x, tf.zeros_like(context))

  bijector, z, kwargs = _conditional_layer(
      lambda c: ContextBlindCoupling(4, NET, 0, F64, context_shape=c), (3,))
  with pytest.raises(AssertionError, match='context 0'):
    bijector_checks.assert_bijector_properties(bijector, z, kwargs=kwargs)


@pytest.mark.parametrize('context_shape', [None, (3,)])
def test_spline_coupling_is_the_identity_at_init(context_shape):
  """Zero network output: equal bins, unit slopes; inside and outside bound."""
  layer = gb.SplineCoupling(4, NET, num_bins=6, bound=2.0, seed=0, dtype=F64,
                            context_shape=context_shape)
  x = 3.0 * _normal([3, 4, 4, 4])   # About a third of the values beyond 2.
  kwargs = {} if context_shape is None else {
      'context': _normal([3, 3], seed=2)}
  gb.data_init(layer, x, **kwargs)
  np.testing.assert_allclose(layer.inverse(x, **kwargs), x, atol=1e-12)
  np.testing.assert_allclose(
      layer.inverse_log_det_jacobian(x, 3, **kwargs), 0.0, atol=1e-12)
  # The control: perturbed, the same layer moves the values in the interval.
  bijector_checks.perturb(layer)
  moved = tf.abs(layer.inverse(x, **kwargs) - x)[..., 2:]
  assert float(tf.reduce_max(moved)) > 1e-3


@pytest.mark.parametrize('bad', [{'num_bins': 1}, {'num_bins': 2.5},
                                 {'bound': 0.0}, {'bound': float('inf')}])
def test_spline_coupling_rejects_bad_arguments(bad):
  name = next(iter(bad))
  with pytest.raises((TypeError, ValueError), match=f'`{name}`'):
    gb.SplineCoupling(4, NET, **bad)
