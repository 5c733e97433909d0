"""resize_center_crop: resampling only the kept pixels gives exactly torchvision's resize-then-crop
(the oracle), on noise images over many geometries and on real photos; the pass-order rule it
relies on matches what Pillow does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.transforms import InterpolationMode

from corrembed.images.batches import Preprocess, read_pil_pixels
from corrembed.images.crop_resize import (
    _box_plan,
    box_resize_agrees,
    exact_box,
    resize_center_crop,
    resized_size,
    vertical_first,
)
from corrembed.images.decode import load_rgb
from corrembed.models import build_transform, parse_model_spec

MODES = [InterpolationMode.BILINEAR, InterpolationMode.BICUBIC, InterpolationMode.LANCZOS]


def _noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _reference(image, resize_to, crop, mode) -> np.ndarray:
    return np.asarray(F.center_crop(F.resize(image, resize_to, interpolation=mode), [crop]))


def _plan(size, resize_to, crop, mode):
    return _box_plan(size, tuple(resize_to), crop, F.pil_modes_mapping[mode])


def test_the_installed_pillow_passes_the_self_check():
    # Otherwise every test below would pass through the fallback alone.
    assert box_resize_agrees()


@pytest.mark.parametrize(
    "size, boxed_axes",
    [
        ((400, 500), (True, True)),  # 800 x 1000 decoded at 1/2: 4:5, both axes exact
        ((500, 750), (True, True)),  # 2:3
        ((500, 500), (True, True)),
        ((375, 500), (True, False)),  # 3:4: the longer side's scale 500/341 is not dyadic
    ],
)
def test_common_photo_geometries_take_the_box_path(size, boxed_axes):
    out, box, left, top = _plan(size, [256], 224, InterpolationMode.BILINEAR)
    assert (out[0] == 224, out[1] == 224) == boxed_axes
    image = _noise(size)
    got = np.asarray(resize_center_crop(image, [256], 224, InterpolationMode.BILINEAR))
    assert np.array_equal(got, _reference(image, [256], 224, InterpolationMode.BILINEAR))


@settings(max_examples=120, deadline=None)
@given(
    width=st.integers(60, 1100),
    height=st.integers(60, 1100),
    resize=st.sampled_from([224, 232, 256, 274, 288, 292]),
    crop=st.sampled_from([224, 240, 256, 260]),
    mode=st.sampled_from(MODES + [InterpolationMode.NEAREST]),
    squash=st.booleans(),
    seed=st.integers(0, 3),
)
def test_equal_to_resize_then_crop_on_noise(width, height, resize, crop, mode, squash, seed):
    """The oracle: torchvision's F.resize + F.center_crop on the same PIL image (noise makes
    every rounding difference visible), whatever the geometry, filter, upscaling or padding."""
    resize_to = [resize, resize] if squash else [resize]
    image = _noise((width, height), seed)
    got = np.asarray(resize_center_crop(image, resize_to, crop, mode))
    assert np.array_equal(got, _reference(image, resize_to, crop, mode))


@pytest.mark.parametrize("mode", MODES)
def test_equal_near_the_pass_order_boundary(mode):
    """Geometries whose box call lands on either side of Pillow's pass-order rule."""
    checked = boxed = 0
    for width in range(300, 420, 7):
        for height in range(300, 700, 23):
            image = _noise((width, height), width + height)
            got = np.asarray(resize_center_crop(image, [256], 224, mode))
            assert np.array_equal(got, _reference(image, [256], 224, mode)), (width, height)
            checked += 1
            boxed += _plan((width, height), [256], 224, mode) is not None
    assert boxed > checked // 4  # the box path is really exercised, not just the fallback


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(100, 900),
    height=st.integers(100, 900),
    out_width=st.integers(20, 900),
    out_height=st.integers(20, 900),
    mode=st.sampled_from(MODES),
)
def test_vertical_first_is_the_order_pillow_takes(width, height, out_width, out_height, mode):
    """Oracle: the two single-axis resizes composed in each order; the full resize equals the
    one the rule names (shrinking both axes, as the box path requires)."""
    out_width, out_height = min(out_width, width - 1), min(out_height, height - 1)
    image = _noise((width, height))
    pil = F.pil_modes_mapping[mode]
    full = np.asarray(image.resize((out_width, out_height), pil))
    if vertical_first((width, height), (out_width, out_height)):
        composed = image.resize((width, out_height), pil).resize((out_width, out_height), pil)
    else:
        composed = image.resize((out_width, height), pil).resize((out_width, out_height), pil)
    assert np.array_equal(full, np.asarray(composed))


def test_exact_box_only_for_dyadic_scales():
    assert exact_box(400, 256, 16, 224) == (25.0, 375.0)
    assert exact_box(500, 341, 58, 224) is None  # 500/341
    assert exact_box(256, 256, 16, 224) is None  # not resized
    assert exact_box(200, 256, 16, 224) is None  # upscaled
    assert resized_size((400, 500), [256]) == (256, 320)
    assert resized_size((500, 375), [256]) == (341, 256)
    assert resized_size((400, 500), [240, 260]) == (260, 240)


def test_real_photos_through_both_pil_decoders(fashion_dir, tmp_path: Path):
    """Real product photos upscaled to 800 x 1000 (full decode and 1/2-scale decode): the
    dataset's pixels equal the weights' own transform on the same decoded image, bit for bit."""
    transform, _ = build_transform(parse_model_spec({"arch": "resnet18", "weights": None}, model_name="model"))
    preprocess = Preprocess.from_transform(transform)
    for path in sorted((fashion_dir / "images").glob("*.jpg"))[:8]:
        target = tmp_path / path.name
        Image.open(path).convert("RGB").resize((800, 1000), Image.BICUBIC).save(target, quality=90)
        for reduced in (False, True):
            rgb = load_rgb(target, max_pixels=None, reduce_to=256 if reduced else None)
            expected = _reference(rgb, [256], 224, preprocess.interpolation_mode).transpose(2, 0, 1)
            got = read_pil_pixels(str(target), preprocess, reduced=reduced).numpy()
            assert np.array_equal(got, expected), (path.name, reduced)
