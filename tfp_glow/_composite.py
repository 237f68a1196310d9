"""Why a `Glow` is a `tfd.TransformedDistribution` whose parts are variables.

TFP's metaclass makes every subclass of the public `tfd.TransformedDistribution`
an auto-`CompositeTensor` whose type spec is its constructor arguments:
flattening rebuilds the object from them. For `tfd.Normal(loc=tf.Variable(1.))`
that is right. A Glow's state is the variables its constructor *creates*, so a
rebuilt Glow would be another random model, and a `tf.Module` (or tf_keras
layer) holding a Glow, which flattens composite attributes into their parts,
would see none of its variables (measured: 0 of 61).

`make_variable_composite(cls)` gives `cls` the type spec below instead: the
parts of a Glow are its variables, and rebuilding returns the same object. So
`tf.Module.variables`, tf_keras's tracking and `tf.nest.flatten(...,
expand_composites=True)` see every variable. A Glow is not a `tf.function`
argument (its variables would be both inputs and captures); the function
should capture it, which raises no error and traces once per Glow.
"""

import weakref

import tensorflow as tf

__all__ = ['VariableCompositeSpec', 'make_variable_composite']


class VariableCompositeSpec(tf.TypeSpec):
  """The `TypeSpec` of a `tf.Module` whose parts are its own variables."""

  def __init__(self, value):
    self._ref = weakref.ref(value)
    self._value_type = type(value)

  @property
  def value_type(self):
    return self._value_type

  @property
  def _component_specs(self):
    return tuple(tf.type_spec_from_value(v) for v in self._ref().variables)

  def _to_components(self, value):
    return tuple(value.variables)

  def _from_components(self, components):
    del components  # They are the variables of the object itself.
    return self._ref()

  def _serialize(self):
    # Identity only holds within a process; there is nothing to save here.
    return (id(self._ref()),)

  @classmethod
  def _deserialize(cls, serialization):
    raise TypeError('A Glow cannot be rebuilt from a serialized TypeSpec; '
                    'save it with tf.train.Checkpoint or a SavedModel.')

  # Compatibility is identity; TypeSpec's defaults would rebuild the spec
  # from `_serialize`, which holds no object.

  def _without_tensor_names(self):
    return self

  def is_subtype_of(self, other):
    return self == other

  def is_compatible_with(self, spec_or_value):
    return self == spec_or_value or spec_or_value is self._ref()

  def most_specific_common_supertype(self, others):
    return self if all(self == other for other in others) else None

  def __eq__(self, other):
    return (isinstance(other, VariableCompositeSpec)
            and self._ref() is not None and self._ref() is other._ref())

  def __hash__(self):
    return id(self._ref())


def _type_spec(self):
  return VariableCompositeSpec(self)


def _not_an_argument(self, context):
  del context
  raise TypeError(
      f'A {type(self).__name__} cannot be an argument of a `tf.function`: '
      'capture it instead, e.g. `tf.function(lambda x: glow.log_prob(x))`.')


def make_variable_composite(cls):
  """Gives the `tfd.TransformedDistribution` subclass `cls` the spec above.

  Applied after the class statement: TFP's metaclass sets `_type_spec` on the
  class it creates, replacing one defined in the class body.
  """
  cls._type_spec = property(_type_spec)  # pylint: disable=protected-access
  cls._convert_variables_to_tensors = lambda self: self  # pylint: disable=protected-access
  cls.__tf_tracing_type__ = _not_an_argument
  return cls
