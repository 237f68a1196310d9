"""The shared property checker applied to every layer and to the whole flow."""

import numbers

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp


def perturb(bijector, scale=0.05, seed=0):
  """Adds noise to every trainable variable, so zero-initialised nets matter."""
  rng = np.random.default_rng(seed)
  for v in bijector.trainable_variables:
    noise = rng.normal(0.0, scale, v.shape).astype(v.dtype.as_numpy_dtype)
    v.assign_add(noise)


def _flat_jacobian_log_det(fn, x):
  """log|det J| of `fn` at each example of `x`, via GradientTape."""
  batch = x.shape[0]
  flat = tf.reshape(x, [batch, -1])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    out = tf.reshape(fn(tf.reshape(flat, x.shape)), [batch, -1])
  jacobian = tape.batch_jacobian(out, flat)
  return tf.linalg.slogdet(jacobian)[1]


def assert_bijector_properties(bijector, z, x=None, kwargs=None, atol=1e-6,
                               rtol=1e-6, check_jacobian=True):
  """Asserts TFP's bijector contract and exactness for `bijector`.

  Args:
    bijector: the bijector, variables already perturbed where they start at 0.
    z: latent-side batch `[N, *event]` (the input of `forward`).
    x: data-side batch `[N, *event]` (the input of `inverse`); default
      `forward(z)` shifted a little, so the inverse is checked off the image of
      the forward pass.
    kwargs: keyword arguments for every bijector call. Tensors under the key
      `context` (at any depth, as `flow.context_kwargs` routes them) are held
      fixed for the log-det checks and must receive gradients.
    atol, rtol: tolerances of the comparisons.
    check_jacobian: compare log-dets with the autodiff Jacobian (float64).
  """
  kwargs = kwargs or {}
  event_ndims = len(z.shape) - 1
  fwd = lambda t: bijector.forward(tf.identity(t), **kwargs)
  inv = lambda t: bijector.inverse(tf.identity(t), **kwargs)
  fldj = lambda t: bijector.forward_log_det_jacobian(
      tf.identity(t), event_ndims, **kwargs)
  ildj = lambda t: bijector.inverse_log_det_jacobian(
      tf.identity(t), event_ndims, **kwargs)

  y = fwd(z)
  if x is None:
    x = y + 0.01 * tf.random.stateless_normal(y.shape, [1, 2], dtype=y.dtype)
  _assert_finite(y, 'forward(z)')
  _assert_finite(inv(x), 'inverse(x)')
  # Round trips both ways; tf.identity makes every call a cache miss.
  np.testing.assert_allclose(inv(y), z, atol=atol, rtol=rtol,
                             err_msg='inverse(forward(z)) != z')
  np.testing.assert_allclose(fwd(inv(x)), x, atol=atol * 10, rtol=rtol,
                             err_msg='forward(inverse(x)) != x')
  assert tuple(bijector.forward_event_shape(z.shape[1:])) == tuple(y.shape[1:])
  assert tuple(bijector.inverse_event_shape(x.shape[1:])) == tuple(
      inv(x).shape[1:])

  forward_ldj = tf.broadcast_to(fldj(z), [z.shape[0]])
  _assert_finite(forward_ldj, 'fldj(z)')
  np.testing.assert_allclose(forward_ldj, -tf.broadcast_to(ildj(y), [z.shape[0]]),
                             atol=atol * 10, rtol=rtol,
                             err_msg='fldj(z) != -ildj(forward(z))')
  if check_jacobian:
    np.testing.assert_allclose(
        forward_ldj, _flat_jacobian_log_det(fwd, z), atol=1e-6, rtol=1e-6,
        err_msg='fldj(z) != log|det dforward/dz| (GradientTape)')
    np.testing.assert_allclose(
        tf.broadcast_to(ildj(x), [x.shape[0]]),
        _flat_jacobian_log_det(inv, x), atol=1e-6, rtol=1e-6,
        err_msg='ildj(x) != log|det dinverse/dx| (GradientTape)')

  _assert_gradients_reach_variables(bijector, z, x, fwd, inv, fldj, ildj,
                                    _contexts(kwargs))
  _assert_function_matches_eager(bijector, z, x, kwargs, event_ndims)


def _assert_finite(t, what):
  assert bool(tf.reduce_all(tf.math.is_finite(t))), f'{what} is not finite'


def _contexts(kwargs):
  """The distinct tensors under a `context` key of (nested) `kwargs`."""
  found = {}

  def visit(d):
    for key, value in d.items():
      if isinstance(value, dict):
        visit(value)
      elif key == 'context':
        found[id(value)] = value

  visit(kwargs)
  return list(found.values())


def _assert_gradients_reach_variables(bijector, z, x, fwd, inv, fldj, ildj,
                                      contexts):
  with tf.GradientTape(persistent=True) as tape:
    for c in contexts:
      tape.watch(c)
    loss = (tf.reduce_sum(fwd(z) ** 2) + tf.reduce_sum(fldj(z))
            + tf.reduce_sum(inv(x) ** 2) + tf.reduce_sum(ildj(x)))
  variables = bijector.trainable_variables
  grads = tape.gradient(loss, variables)
  missing = [v.name for v, g in zip(variables, grads) if g is None]
  assert not missing, f'no gradient reaches {missing}'
  for v, g in zip(variables, grads):
    _assert_finite(g, f'gradient of {v.name}')
  for i, g in enumerate(tape.gradient(loss, contexts)):
    assert g is not None, f'no gradient reaches context {i}'
    _assert_finite(g, f'gradient of context {i}')
    assert float(tf.reduce_max(tf.abs(g))) > 0.0, (
        f'the output does not depend on context {i}')


def _assert_function_matches_eager(bijector, z, x, kwargs, event_ndims):
  """Same results inside tf.function with an unknown batch size."""
  spec = tf.TensorSpec([None] + list(z.shape[1:]), z.dtype)
  x_spec = tf.TensorSpec([None] + list(x.shape[1:]), x.dtype)

  @tf.function(input_signature=[spec])
  def forward_and_ldj(t):
    return (bijector.forward(t, **kwargs),
            bijector.forward_log_det_jacobian(t, event_ndims, **kwargs))

  @tf.function(input_signature=[x_spec])
  def inverse_and_ldj(t):
    return (bijector.inverse(t, **kwargs),
            bijector.inverse_log_det_jacobian(t, event_ndims, **kwargs))

  y, fl = forward_and_ldj(z)
  np.testing.assert_allclose(y, bijector.forward(z, **kwargs), atol=1e-6)
  np.testing.assert_allclose(
      fl, bijector.forward_log_det_jacobian(z, event_ndims, **kwargs),
      atol=1e-6)
  w, il = inverse_and_ldj(x)
  np.testing.assert_allclose(w, bijector.inverse(x, **kwargs), atol=1e-6)
  np.testing.assert_allclose(
      il, bijector.inverse_log_det_jacobian(x, event_ndims, **kwargs),
      atol=1e-6)


def assert_layer_contract(bijector, event_shape, twin=None):
  """Asserts TFP's layer contract: `copy()` rebuilds, equality is identity.

  `copy()` must return a layer of the same type, event shapes, dtype and
  variable shapes, with variables of its own: only those of bijectors passed
  as arguments (a wrapper's `bijector`, a chain's `bijectors`) may be shared,
  as in `tfb.Chain`. When the arguments fix the initial values (no `seed`, or
  an int one), a copy starts with the values a fresh build has.

  A layer equals and hashes only as itself. `twin` is the control case: a
  layer built separately from the same arguments, which TFP's own rule
  (equality and hash by parameters) calls equal to `bijector`; the check
  asserts that TFP's rule does, so it is not met trivially, and that the layer
  does not.

  Args:
    bijector: the layer.
    event_shape: an event shape that `bijector.forward` accepts.
    twin: the control layer. Default: `type(bijector)(**bijector.parameters)`.
  """
  name = type(bijector).__name__
  try:
    copy = bijector.copy()
  except Exception as e:  # pylint: disable=broad-except
    raise AssertionError(f'{name}.copy() failed: {e!r}') from e
  assert type(copy) is type(bijector), f'{name}.copy() is a {type(copy)}'
  assert set(copy.parameters) == set(bijector.parameters)
  assert copy.dtype == bijector.dtype
  assert copy.forward_min_event_ndims == bijector.forward_min_event_ndims
  y_shape = bijector.forward_event_shape(event_shape)
  assert copy.forward_event_shape(event_shape) == y_shape
  assert copy.inverse_event_shape(y_shape) == bijector.inverse_event_shape(
      y_shape)
  assert _shapes_and_dtypes(copy) == _shapes_and_dtypes(bijector), (
      f'{name}.copy() has other variables')
  shared = _ids(bijector.variables) & _ids(copy.variables)
  wrapped = _ids(v for b in _wrapped_bijectors(bijector) for v in b.variables)
  assert shared == wrapped, (
      f'{name}.copy() shares {len(shared - wrapped)} variables of its own')

  if twin is None:
    twin = type(bijector)(**bijector.parameters)
  if _deterministic(bijector.parameters):
    for a, b in zip(copy.variables, twin.variables):
      np.testing.assert_array_equal(
          a, b, err_msg=f'{name}.copy() starts at other values: {a.name}')

  # The control: TFP's equality by parameters cannot tell the twin apart.
  base = tfp.bijectors.Bijector
  assert base.__eq__(bijector, twin), 'the twin is not a control case'
  assert base.__hash__(bijector) == base.__hash__(twin), (
      'the twin is not a control case')
  assert bijector == bijector and not bijector != bijector  # pylint: disable=comparison-with-itself
  assert hash(bijector) == hash(bijector)
  for other, what in ((copy, 'its copy'), (twin, 'its twin')):
    assert bijector != other and not bijector == other, (
        f'{name} compares equal to {what}')
    assert hash(bijector) != hash(other), f'{name} hashes like {what}'


def _ids(variables):
  return {id(v) for v in variables}


def _shapes_and_dtypes(bijector):
  return [(tuple(v.shape), v.dtype) for v in bijector.variables]


def _wrapped_bijectors(bijector):
  return [p for p in tf.nest.flatten(bijector.parameters)
          if isinstance(p, tfp.bijectors.Bijector)]


def _deterministic(parameters):
  """Whether `parameters` fix the initial values: no seed, or an int seed."""
  seed = parameters.get('seed')
  return 'seed' not in parameters or (
      isinstance(seed, numbers.Integral) and not isinstance(seed, bool))
