import numpy as np
import pytest
from PIL import Image

from pipeline.io.atomic import atomic_dir, atomic_write_text
from pipeline.io.images import ImageError, content_hash, read_image
from tests.helpers import noise_image, write_image


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_any_mode_reads_as_rgb_uint8(tmp_path, mode):
    rgb = noise_image(33, 17, 0)
    if mode == "I;16":
        img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    else:
        img = Image.fromarray(rgb).convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    decoded = read_image(path)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == (17, 33, 3)
    assert not decoded.is_clean
    if mode == "I;16":
        np.testing.assert_array_equal(decoded.pixels[..., 1], rgb[..., 0])


def palette_image(transparent: bool) -> Image.Image:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    img.putdata([0, 1, 2])
    if transparent:
        img.info["transparency"] = 1  # green is the transparent index: its colour is kept, alpha dropped
    return img


def cmyk_reference(cmyk: np.ndarray) -> np.ndarray:
    """The usual naive CMYK to RGB: each channel (255 - C) * (255 - K) / 255."""
    c, k = cmyk[..., :3].astype(float), cmyk[..., 3:].astype(float)
    return np.rint((255 - c) * (255 - k) / 255).astype(np.uint8)


CMYK = np.array([[[0, 255, 255, 0], [255, 0, 0, 0], [0, 0, 0, 128], [100, 50, 20, 30]]], np.uint8)

# Each mode written with known values, and the RGB pixels it must read as (worked out by hand)
REFERENCE = {
    "L": (lambda: Image.fromarray(np.array([[0, 128, 255]], np.uint8)), [[[0] * 3, [128] * 3, [255] * 3]]),
    "1": (lambda: Image.fromarray(np.array([[0, 255, 0]], np.uint8)).convert("1"), [[[0] * 3, [255] * 3, [0] * 3]]),
    "P": (lambda: palette_image(False), [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]),
    "P+transparency": (lambda: palette_image(True), [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]),
    "LA": (lambda: Image.fromarray(np.array([[[40, 0], [200, 255]]], np.uint8), "LA"), [[[40] * 3, [200] * 3]]),
    "RGBA": (lambda: Image.fromarray(np.array([[[10, 20, 30, 0], [1, 2, 3, 255]]], np.uint8), "RGBA"),
             [[[10, 20, 30], [1, 2, 3]]]),
    "I;16": (lambda: Image.fromarray(np.array([[0, 25900, 65535]], np.uint16)), [[[0] * 3, [101] * 3, [255] * 3]]),
    "CMYK": (lambda: Image.fromarray(CMYK, "CMYK"), cmyk_reference(CMYK).tolist()),
}


@pytest.mark.parametrize("case", sorted(REFERENCE))
def test_each_mode_reads_as_the_rgb_values_it_stands_for(tmp_path, case):
    """Alpha is dropped (not composited), palettes are looked up, 1-bit is 0 or 255, 16-bit is
    scaled by 1/257, CMYK is converted channel by channel (lossless TIFF, so the values are exact)."""
    make, expected = REFERENCE[case]
    img = make()
    path = tmp_path / ("x.tiff" if img.mode == "CMYK" else "x.png")
    img.save(path, transparency=img.info["transparency"]) if "transparency" in img.info else img.save(path)
    with Image.open(path) as check:
        assert check.mode == img.mode or (case == "I;16" and check.mode.startswith("I")), check.mode
    np.testing.assert_array_equal(read_image(path).pixels, np.array(expected, np.uint8))


def test_truncated_and_non_images_are_refused(tmp_path):
    path = write_image(tmp_path / "a.jpg", noise_image(64, 64, 1), quality=90)
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(ImageError, match="a.jpg: cannot decode") as info:
        read_image(path)
    assert info.value.code == "undecodable_image"
    (tmp_path / "b.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match="b.png"):
        read_image(tmp_path / "b.png")


def test_pillow_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(path)  # 196 Mpx: Pillow itself refuses past 2x its limit
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert info.value.code == "decompression_bomb"


def test_content_hash_ignores_file_encoding(tmp_path):
    pixels = noise_image(20, 10, 2)
    a = write_image(tmp_path / "a.png", pixels, compress_level=0)
    b = write_image(tmp_path / "b.png", pixels, compress_level=9)
    assert a.read_bytes() != b.read_bytes()
    assert content_hash(read_image(a).pixels) == content_hash(read_image(b).pixels)
    assert content_hash(pixels) != content_hash(noise_image(20, 10, 3))


def test_atomic_dir_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "out"
    atomic_write_text(tmp_path / "out" / "old.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
