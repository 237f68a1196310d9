"""CelebA attribute manipulation: move test images along an attribute vector.

The vector is the mean latent of training images with the attribute minus
that of images without it; each row shows one test image decoded from
`z + s * vector` for every strength s.

  python examples/train.py --preset celeba64 --run-dir runs/celeba64
  python examples/manipulate.py --run-dir runs/celeba64 --attribute Smiling --strengths -1 0 1
"""

import argparse

from tfp_glow import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--run-dir', required=True, help='Run directory of a celeb_a run.')
  parser.add_argument('--attribute', default='Smiling',
                      help='CelebA attribute (tfp_glow.data.attribute_names()).')
  parser.add_argument('--strengths', type=float, nargs='+',
                      default=[-1.0, -0.5, 0.0, 0.5, 1.0],
                      help='Multiples of the vector, one column each (default: -1 -0.5 0 0.5 1).')
  parser.add_argument('--num-images', type=int, default=4, help='Test images (rows).')
  parser.add_argument('--num-direction-images', type=int, default=1000,
                      help='Training images averaged into the vector.')
  parser.add_argument('--output', help='PNG (default: RUN_DIR/samples/ATTRIBUTE.png).')
  parser.add_argument('--data-dir', help='TFDS data directory.')
  parser.add_argument('--scale', type=int, metavar='N',
                      help='Upscale the grid N times, nearest neighbour (default: each '
                      'image at least 96 px high; 1: one pixel per pixel).')
  args = parser.parse_args(argv)
  path = tasks.manipulation_grid(
      args.run_dir, args.output or f'{args.run_dir}/samples/{args.attribute}.png',
      args.attribute, strengths=args.strengths,
      num_images=args.num_images, num_direction_images=args.num_direction_images,
      data_dir=args.data_dir, scale=args.scale)
  print(f'wrote {path}')
  return path


if __name__ == '__main__':
  main()
