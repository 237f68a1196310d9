"""tfp_glow.images: grids are upscaled, nearest neighbour, to a readable size."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import images


def _tiles(n, height, width, channels, seed=0):
  rng = np.random.default_rng(seed)
  # From 1: no tile pixel is the black of the padding.
  return rng.integers(1, 256, size=(n, height, width, channels)).astype(
      np.uint8)


def _png(path):
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


@pytest.mark.parametrize('height,scale', [(28, 4), (32, 3), (64, 2), (8, 12),
                                          (96, 1), (97, 1), (256, 1)])
def test_default_scale_makes_tiles_at_least_96_pixels_high(height, scale):
  assert images.grid_scale(height) == scale
  # The smallest such factor: one less would leave the tiles under 96 px.
  assert height * scale >= images.MIN_TILE_HEIGHT == 96
  assert scale == 1 or height * (scale - 1) < 96


def test_default_grid_size():
  # 5 digits of 28x28 in 2 rows of 3: tiles x4 (112 px), gaps 4 px.
  grid = images.image_grid(_tiles(5, 28, 28, 1), rows=2)
  assert grid.shape == ((2 * 29 - 1) * 4, (3 * 29 - 1) * 4, 1)
  # 3 CIFAR-sized images, ceil(sqrt(3)) = 2 rows: x3.
  grid = images.image_grid(_tiles(3, 32, 32, 3))
  assert grid.shape == ((2 * 33 - 1) * 3, (2 * 33 - 1) * 3, 3)


@pytest.mark.parametrize('scale', [1, 2, 5])
def test_explicit_scale_sets_the_size(scale):
  grid = images.image_grid(_tiles(5, 28, 28, 1), rows=2, scale=scale)
  assert grid.shape == ((2 * 29 - 1) * scale, (3 * 29 - 1) * scale, 1)


@pytest.mark.parametrize('scale', [1, 3])
def test_every_pixel_becomes_a_block_of_its_value(scale):
  tiles = _tiles(5, 6, 4, 3)
  grid = images.image_grid(tiles, rows=2, padding=2, scale=scale)
  blocks = grid.reshape(grid.shape[0] // scale, scale,
                        grid.shape[1] // scale, scale, 3)
  # Each scale x scale block holds one value per channel.
  np.testing.assert_array_equal(
      blocks, np.broadcast_to(blocks[:, :1, :, :1], blocks.shape))
  small = blocks[:, 0, :, 0]
  for i in range(5):
    top, left = (i // 3) * (6 + 2), (i % 3) * (4 + 2)
    np.testing.assert_array_equal(small[top:top + 6, left:left + 4], tiles[i])
  # The gaps (and the empty sixth place) are black and scaled with the
  # tiles: 2 * scale pixels wide.
  mask = np.zeros(small.shape[:2], bool)
  for i in range(5):
    top, left = (i // 3) * 8, (i % 3) * 6
    mask[top:top + 6, left:left + 4] = True
  assert not small[~mask].any()
  assert small[mask].all()
  assert not grid[6 * scale:8 * scale].any()


def test_save_png_grid_writes_the_upscaled_grid(tmp_path):
  x = np.floor(np.random.default_rng(1).uniform(0, 32, size=(4, 8, 8, 3)))
  path = images.save_png_grid(str(tmp_path / 'sub' / 'g.png'), x, num_bits=5)
  png = _png(path)
  assert png.shape == ((2 * 9 - 1) * 12, (2 * 9 - 1) * 12, 3)
  expected = images.image_grid(images.to_uint8(x, num_bits=5).numpy(),
                               scale=12)
  np.testing.assert_array_equal(png, expected)
  one = _png(images.save_png_grid(str(tmp_path / 'one.png'), x, num_bits=5,
                                  scale=1))
  assert one.shape == (17, 17, 3)
  np.testing.assert_array_equal(png, np.repeat(np.repeat(one, 12, 0), 12, 1))


@pytest.mark.parametrize('scale', [0, -2])
def test_a_scale_below_one_is_refused(scale, tmp_path):
  message = rf'`scale` must be >= 1; got scale={scale}\.'
  with pytest.raises(ValueError, match=message):
    images.grid_scale(28, scale)
  with pytest.raises(ValueError, match=message):
    images.image_grid(_tiles(2, 4, 4, 1), scale=scale)
  path = str(tmp_path / 'bad.png')
  with pytest.raises(ValueError, match=message):
    images.save_png_grid(path, np.zeros([2, 4, 4, 1]), scale=scale)
  assert not os.path.exists(path)


@pytest.mark.parametrize('scale', [2.0, True, '2'])
def test_a_scale_that_is_no_int_is_refused(scale):
  with pytest.raises(TypeError, match=r'`scale` must be an int; got '):
    images.image_grid(_tiles(2, 4, 4, 1), scale=scale)
