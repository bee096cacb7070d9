"""Generated Image / CompressedImage messages against tacocc_ros/messages/images.py (the node's camera boundary).

Raw images: every encoding, sizes, row padding and endianness decode to what a per-pixel re-computation
of the bytes says; an unknown encoding, a short step, truncated data, an empty or huge size raise
ImageDecodeError naming it. Compressed images: a PNG decodes to its pixels, a JPEG to its size; a
truncated, bit-flipped, foreign or header-lying (huge IHDR) file raises ImageDecodeError or decodes to the
size its header states; `check_image` (the node's callback check) and `decode_for_network` (its worker)
never raise anything else.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import fuzz_tally
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from tacocc_ros.messages.images import (
    RAW_ENCODINGS,
    ImageDecodeError,
    check_image,
    decode_for_network,
    numpy_image_to_rgb,
)

RAW, COMPRESSED = "Image", "CompressedImage"
OUT = (4, 8)
U32 = 2**32 - 1


# The encodings whose pixels the per-pixel reference below reads; the drivers' Bayer and YUV 4:2:2 images
# are compared with OpenCV's own conversion of the same pixels (test_generated_driver_images_...).
PLAIN_ENCODINGS = ("bgr8", "bgra8", "mono16", "mono8", "rgb8", "rgba8")
DRIVER_ENCODINGS = tuple(sorted(e for e in RAW_ENCODINGS if e not in PLAIN_ENCODINGS))


@st.composite
def good_raw(draw, encodings: tuple[str, ...] = PLAIN_ENCODINGS) -> Image:
    encoding = draw(st.sampled_from(encodings))
    channels, depth, _ = RAW_ENCODINGS[encoding]
    height, width = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    if channels == 2:  # YUV 4:2:2: two pixels share U and V
        width = 2 * ((width + 1) // 2)
    step = width * channels * depth + draw(st.integers(0, 3))
    size = step * height - draw(st.integers(0, step - width * channels * depth))  # last row's padding optional
    data = draw(st.binary(min_size=size, max_size=size)) + draw(st.binary(max_size=4))
    return Image(height=height, width=width, encoding=encoding, is_bigendian=draw(st.booleans()), step=step, data=data)


def reference_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 from the bytes, one pixel at a time."""
    channels, depth, _ = RAW_ENCODINGS[msg.encoding]
    data = bytes(msg.data)
    out = np.zeros((msg.height, msg.width, 3), dtype=np.uint8)
    for r in range(msg.height):
        for c in range(msg.width):
            px = data[r * msg.step + c * channels * depth :][: channels * depth]
            if msg.encoding == "mono16":
                value = int.from_bytes(px, "big" if msg.is_bigendian else "little") >> 8
                out[r, c] = (value, value, value)
            elif msg.encoding == "mono8":
                out[r, c] = (px[0], px[0], px[0])
            elif msg.encoding.startswith("bgr"):
                out[r, c] = (px[2], px[1], px[0])
            else:
                out[r, c] = (px[0], px[1], px[2])
    return out


def like(msg: Image, **changes) -> Image:
    values = {k: getattr(msg, k) for k in ("height", "width", "encoding", "is_bigendian", "step")}
    values["data"] = bytes(msg.data)
    values.update(changes)
    return Image(**values)


@st.composite
def bad_raw(draw) -> tuple[str, Image, tuple[str, ...]]:
    good = draw(good_raw())
    channels, depth, _ = RAW_ENCODINGS[good.encoding]
    row = good.width * channels * depth
    kind = draw(st.sampled_from(["encoding", "step", "truncated", "zero_size", "huge_height", "huge_width"]))
    if kind == "encoding":
        encoding = draw(st.text(max_size=12).filter(lambda e: e not in RAW_ENCODINGS))
        return kind, like(good, encoding=encoding), ("encoding", repr(encoding))
    if kind == "step":
        step = draw(st.integers(0, row - 1))
        return kind, like(good, step=step), (f"step {step}",)
    if kind == "truncated":
        needed = good.step * (good.height - 1) + row
        data = bytes(good.data)[: draw(st.integers(0, needed - 1))]
        return kind, like(good, data=data), ("truncated", f"holds {len(data)} bytes")
    if kind == "zero_size":
        which = draw(st.sampled_from(["height", "width"]))
        return kind, like(good, **{which: 0}), ("empty",)
    if kind == "huge_height":
        height = draw(st.integers(len(good.data) + 1, U32))
        return kind, like(good, height=height), ("truncated", f"{good.width}x{height}")
    width = draw(st.integers(good.width + 4, U32 // (channels * depth)))
    return kind, like(good, width=width), (f"width {width}",)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@given(st.one_of(good_raw().map(lambda m: ("good", m, ())), bad_raw()))
def test_generated_raw_images_decode_like_the_bytes_or_raise_naming_the_field(case):
    kind, msg, words = case

    def decode():
        check_image(msg, source="/cam/image_raw")
        return numpy_image_to_rgb(msg, source="/cam/image_raw"), decode_for_network(msg, OUT, source="/cam/image_raw")

    outcome = fuzz_tally.check(RAW, kind, decode, ImageDecodeError)
    if kind == "good":
        assert outcome.error is None, outcome.message
        rgb, (small, _) = outcome.value
        np.testing.assert_array_equal(rgb, reference_rgb(msg))
        assert small.shape == (*OUT, 3) and small.dtype == np.uint8
    else:
        assert outcome.error is not None, f"{kind}: a malformed image decoded"
        assert "/cam/image_raw" in outcome.message
        for word in words:
            assert word in outcome.message, f"{kind}: {word!r} not in {outcome.message!r}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@given(good_raw(DRIVER_ENCODINGS))
def test_generated_driver_images_decode_as_opencv_converts_their_pixels(msg):
    """Bayer and YUV 4:2:2 images of any size and padding: OpenCV's conversion of the same pixels."""
    channels, depth, to_rgb = RAW_ENCODINGS[msg.encoding]
    data = bytes(msg.data)
    row = msg.width * channels * depth
    rows = np.frombuffer(b"".join(data[r * msg.step :][:row] for r in range(msg.height)), dtype=np.uint8)
    if depth == 2:
        pixels = rows.view(">u2" if msg.is_bigendian else "<u2").astype(np.uint16).reshape(msg.height, msg.width)
    else:
        pixels = rows.reshape(msg.height, msg.width, channels) if channels > 1 else rows.reshape(msg.height, msg.width)
    expected = cv2.cvtColor(pixels, to_rgb)
    if expected.dtype == np.uint16:
        expected = (expected >> 8).astype(np.uint8)
    rgb = numpy_image_to_rgb(msg, source="/cam/image_raw")
    assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, expected)


def _png_with_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR width/height replaced (CRC recomputed): a header that lies about the size."""
    ihdr = bytearray(png[12:29])  # b"IHDR" + 13 bytes
    struct.pack_into(">II", ihdr, 4, width, height)
    return png[:8] + png[8:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(bytes(ihdr))) + png[33:]


@st.composite
def compressed_cases(draw) -> tuple[str, CompressedImage, np.ndarray | None]:
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    kind = draw(st.sampled_from(["png", "jpeg"]))
    ok, encoded = cv2.imencode("." + kind, pixels)
    data = encoded.tobytes()
    fmt = draw(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "", "h264"]))
    mutation = draw(
        st.sampled_from(["good", "truncated", "flipped", "foreign", "magic_then_garbage", "huge_header", "empty"])
    )
    if mutation == "good":
        return f"good {kind}", CompressedImage(format=fmt, data=data), pixels if kind == "png" else None
    if mutation == "truncated":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif mutation == "flipped":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif mutation == "foreign":
        data = draw(st.binary(max_size=64))
    elif mutation == "magic_then_garbage":
        data = (b"\xff\xd8\xff" if kind == "jpeg" else b"\x89PNG\r\n\x1a\n") + draw(st.binary(max_size=64))
    elif mutation == "huge_header":
        png = cv2.imencode(".png", pixels)[1].tobytes()
        data = _png_with_size(png, draw(st.integers(1, 2**31 - 1)), draw(st.integers(1, 2**31 - 1)))
        kind = "png"
    else:
        data = b""
    return f"{mutation} {kind}", CompressedImage(format=fmt, data=data), None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@given(compressed_cases())
def test_generated_compressed_images_decode_or_raise_an_image_error(case):
    kind, msg, pixels = case

    def decode():
        check_image(msg, source="/cam/image/compressed")
        return decode_for_network(msg, OUT, source="/cam/image/compressed")

    outcome = fuzz_tally.check(COMPRESSED, kind.split()[0], decode, ImageDecodeError)
    if kind.startswith("good"):
        assert outcome.error is None, outcome.message
    if outcome.error is None:
        image, transform = outcome.value
        assert image.shape == (*OUT, 3) and image.dtype == np.uint8
    else:
        assert "/cam/image/compressed" in outcome.message
    if pixels is not None:  # a PNG is lossless: the full-size decode is its pixels
        from tacocc_ros.messages.images import compressed_to_rgb

        np.testing.assert_array_equal(compressed_to_rgb(msg), pixels[..., ::-1])


def test_a_png_header_claiming_a_decompression_bomb_is_an_image_error():
    """Regression (found by the generator): a 10 x 17895698 IHDR raised PIL's DecompressionBombError."""
    png = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()
    msg = CompressedImage(format="png", data=_png_with_size(png, 10, 17895698))
    with pytest.raises(ImageDecodeError, match="unreadable image header|more than"):
        check_image(msg, source="/cam")


def test_a_png_header_larger_than_the_bound_is_refused_before_decoding():
    """A 9000 x 9000 header (81 Mpx: below PIL's bomb limit) is refused before OpenCV allocates 243 MB for it."""
    png = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()
    msg = CompressedImage(format="png", data=_png_with_size(png, 9000, 9000))
    with pytest.raises(ImageDecodeError, match="9000x9000 = 81000000 pixels, more than"):
        decode_for_network(msg, OUT, source="/cam")
