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
