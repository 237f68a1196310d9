"""Docstrings cannot drift from the code: every literal `Default value:`
matches the signature, and every argument of a public callable is documented."""

import ast
import inspect
import re

import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow import bijectors
from tfp_glow import export
from tfp_glow import nn

PUBLIC = [getattr(bijectors, name) for name in bijectors.__all__
          if name != 'Chain'] + [  # Chain's docs are tfb.Chain's.
              tfp_glow.Glow, export.export_saved_model, nn.glow_conditioner]


def _arg_entries(obj):
  """{argument: its Args: text} from the docstring."""
  doc = inspect.getdoc(obj) or ''
  if 'Args:\n' not in doc:
    return {}
  block = doc.split('Args:\n', 1)[1]
  block = re.split(r'\n(?=\S)', block, maxsplit=1)[0]  # Up to the next section.
  entries = re.split(r'\n(?=  \w+:)', '\n' + block)
  return {m.group(1): e for e in entries
          if (m := re.match(r'\s*(\w+):', e))}


def _literal(text):
  if text.startswith('tf.'):
    return getattr(tf, text[3:])
  return ast.literal_eval(text)


@pytest.mark.parametrize('obj', PUBLIC, ids=lambda o: o.__name__)
def test_default_values_match_signatures(obj):
  signature = inspect.signature(obj)
  for name, entry in _arg_entries(obj).items():
    found = re.search(r'Default value: `([^`]*)`', entry)
    if not found:
      continue
    try:
      documented = _literal(found.group(1))
    except (ValueError, SyntaxError, AttributeError):
      continue  # Describes an effective default (e.g. a factory call).
    assert name in signature.parameters, f'{obj.__name__}: no argument {name}'
    assert signature.parameters[name].default == documented, (
        f'{obj.__name__}({name}=...) defaults to '
        f'{signature.parameters[name].default!r}; the docstring says '
        f'{found.group(1)}')


@pytest.mark.parametrize('obj', PUBLIC, ids=lambda o: o.__name__)
def test_every_argument_is_documented(obj):
  documented = set(_arg_entries(obj))
  for name, param in inspect.signature(obj).parameters.items():
    if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
      continue
    assert name in documented, f'{obj.__name__}: `{name}` is not in Args:'


def test_the_parser_sees_defaults():
  """Guards the checks above against a parser that finds nothing."""
  entries = _arg_entries(tfp_glow.Glow)
  assert 'Default value: `8`' in entries['num_bits']
  assert len(entries) == len(inspect.signature(tfp_glow.Glow).parameters)
