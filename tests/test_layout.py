"""The package's tiers: each module imports only its own tier and those below.

Read from the source (the `import` statements), so a new import that breaks
the layering fails here, whatever the import order at run time.
"""

import ast
import pathlib

import pytest

import tfp_glow

PACKAGE = pathlib.Path(tfp_glow.__file__).parent

# The tiers, lowest first; mirrors the module map in tfp_glow/__init__.py.
# `data` and `training` stand side by side: neither imports the other.
TIERS = {
    'core': 0, 'layers': 1, 'model': 2, 'data': 3, 'training': 3, 'edge': 4,
}


def _tier_of(module):
  """The tier of a dotted module name inside tfp_glow."""
  parts = module.split('.')[1:]
  if not parts:
    return 'edge'  # The package itself re-exports every tier.
  head = parts[0]
  if head in ('bijectors', 'nn', '_conv'):
    return 'layers'
  if head in ('flow', 'glow', '_composite', 'dequantizer', 'checkpoints'):
    return 'model'
  if head in ('_validation', '_inputs', '_context', '_hardware', 'vocabulary',
              'images'):
    return 'core'
  if head == 'data':
    return 'data'
  if head == 'training':
    return 'training'
  return 'edge'


def _modules():
  for path in sorted(PACKAGE.rglob('*.py')):
    relative = path.relative_to(PACKAGE.parent).with_suffix('')
    parts = list(relative.parts)
    if parts[-1] == '__init__':
      parts = parts[:-1]
    yield '.'.join(parts), path


def _imports(module, path):
  """The tfp_glow modules that `path` imports (absolute or relative)."""
  package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        anchor = package.split('.')
        anchor = anchor[:len(anchor) - node.level + 1]
        base = '.'.join(anchor + ([base] if base else []))
      names = [f'{base}.{alias.name}' for alias in node.names] + [base]
    else:
      continue
    for name in names:
      if name == 'tfp_glow' or name.startswith('tfp_glow.'):
        yield name


def _violations(modules):
  found = []
  for module, path in modules:
    if module == 'tfp_glow':
      continue
    tier = _tier_of(module)
    for imported in _imports(module, path):
      other = _tier_of(imported)
      if imported == 'tfp_glow':
        continue
      if TIERS[other] > TIERS[tier] or (
          TIERS[other] == TIERS[tier] and other != tier):
        found.append(f'{module} ({tier}) imports {imported} ({other})')
  return found


def test_every_module_imports_only_its_tier_and_below():
  found = _violations(_modules())
  assert not found, '\n'.join(found)


@pytest.mark.parametrize('module,source', [
    ('tfp_glow.bijectors.bad', 'from tfp_glow import glow'),
    ('tfp_glow.bijectors.bad', 'from .. import training'),
    ('tfp_glow.data.bad', 'import tfp_glow.training.model'),
    ('tfp_glow.training.bad', 'from tfp_glow.data import pipeline'),
    ('tfp_glow.glow', 'from tfp_glow import cli'),
])
def test_the_rule_can_fail(tmp_path, module, source):
  """Control: upward and sideways imports are caught."""
  path = tmp_path / 'bad.py'
  path.write_text(source + '\n')
  assert _violations([(module, path)])


@pytest.mark.parametrize('tier', sorted(TIERS))
def test_the_module_map_names_every_tier(tier):
  assert f'`{tier}`' in tfp_glow.__doc__ or tier in tfp_glow.__doc__
