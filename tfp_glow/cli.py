"""The `tfp-glow` command. Subcommands: `export` (train, sample and evaluate
arrive with the data and examples work)."""

import argparse
import os
import sys

__all__ = ['main']


def _export(args):
  from tfp_glow import export  # pylint: disable=g-import-not-at-top
  from tfp_glow import runs  # pylint: disable=g-import-not-at-top
  output_parent = os.path.dirname(os.path.abspath(args.output))
  if not os.access(output_parent, os.W_OK):
    raise PermissionError(f'--output: cannot write in {output_parent}')
  glow = runs.load_glow(args.run_dir)
  export.export_saved_model(glow, args.output)
  print(f'Exported a SavedModel to {args.output} (signatures: '
        f'{", ".join(export.SIGNATURES)}).')


def _parser():
  parser = argparse.ArgumentParser(
      prog='tfp-glow', description='Glow normalizing flows on TensorFlow '
      'Probability: export trained models.')
  commands = parser.add_subparsers(dest='command', required=True)
  export = commands.add_parser(
      'export', help='Write a SavedModel serving log_prob, bits_per_dim, '
      'sample, encode and decode, loadable with TensorFlow alone.')
  export.add_argument('--run-dir', required=True,
                      help='Run directory holding config.json and '
                      'checkpoints/ (the newest checkpoint is exported).')
  export.add_argument('--output', required=True,
                      help='Directory to write the SavedModel to.')
  export.set_defaults(handler=_export)
  return parser


def main(argv=None):
  """Runs the command; bad input exits 2 with a one-line message."""
  args = _parser().parse_args(argv)
  try:
    args.handler(args)
  except (OSError, ValueError, TypeError) as e:
    print(f'tfp-glow {args.command}: error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
