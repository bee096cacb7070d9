"""tacocc_ros.messages.images: raw and compressed image messages -> RGB at the network size."""

import io
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image

from tacocc_core.geometry import ImageTransform
from tacocc_ros.messages import images
from tacocc_ros.messages.images import (
    ImageDecodeError,
    compressed_size,
    compressed_to_rgb,
    decode_cameras,
    decode_for_network,
    image_to_rgb,
    jpeg_reduction,
    numpy_image_to_rgb,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
GREY16 = RNG.integers(0, 65536, size=(5, 7), dtype=np.uint16)


def raw_message(encoding, pad=0, big=False):
    """Lay out the bytes of RGB (or GREY16) row by row by hand, with `pad` garbage bytes after each row."""
    r, g, b = RGB[..., 0], RGB[..., 1], RGB[..., 2]
    alpha = np.full_like(r, 77)
    grey = ((r.astype(int) + g + b) // 3).astype(np.uint8)
    planes = {
        "rgb8": [r, g, b],
        "bgr8": [b, g, r],
        "rgba8": [r, g, b, alpha],
        "bgra8": [b, g, r, alpha],
        "mono8": [grey],
    }
    rows = []
    for y in range(RGB.shape[0]):
        row = bytearray()
        for x in range(RGB.shape[1]):
            if encoding == "mono16":
                row += int(GREY16[y, x]).to_bytes(2, "big" if big else "little")
            else:
                row += bytes(int(p[y, x]) for p in planes[encoding])
        rows.append(bytes(row) + b"\xee" * pad)
    step = len(rows[0])
    return Image(height=5, width=7, encoding=encoding, is_bigendian=big, step=step, data=b"".join(rows))


def expected_rgb(encoding):
    if encoding == "mono8":
        grey = ((RGB[..., 0].astype(int) + RGB[..., 1] + RGB[..., 2]) // 3).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if encoding == "mono16":
        return np.repeat((GREY16 // 256).astype(np.uint8)[..., None], 3, axis=2)
    return RGB


RAW_CASES = [(e, pad, False) for e in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16") for pad in (0, 3)]
RAW_CASES.append(("mono16", 2, True))


@pytest.mark.parametrize(("encoding", "pad", "big"), RAW_CASES)
def test_raw_encodings_against_hand_laid_bytes(encoding, pad, big):
    msg = raw_message(encoding, pad, big)
    out = image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, expected_rgb(encoding))


@pytest.mark.parametrize(("encoding", "pad", "big"), RAW_CASES)
def test_decode_for_network_resizes_raw_like_the_transform(encoding, pad, big):
    msg = raw_message(encoding, pad, big)
    out, transform = decode_for_network(msg, (4, 4))
    assert transform == ImageTransform.resize_crop_bottom((5, 7), (4, 4))
    np.testing.assert_array_equal(out, transform.apply_to_image(expected_rgb(encoding)))


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda m: setattr(m, "encoding", "32FC1"), r"cam: unsupported image encoding '32FC1'; supported: rgb8"),
        (lambda m: setattr(m, "step", 20), r"cam: step 20 < width 7 x 3 bytes per pixel"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-1]), r"cam: data holds 104 bytes.*needs 105; truncated"),
        (lambda m: setattr(m, "height", 0), r"cam: empty 7x0 image"),
    ],
)
def test_bad_raw_images_are_named(mutate, pattern):
    msg = raw_message("rgb8")
    mutate(msg)
    with pytest.raises(ImageDecodeError, match=pattern):
        image_to_rgb(msg, source="cam")
    with pytest.raises(ImageDecodeError, match=pattern):
        decode_for_network(msg, (4, 4), source="cam")


def encode_with_pil(array, fmt, **kwargs):
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format=fmt, **kwargs)
    return CompressedImage(format=fmt.lower(), data=buffer.getvalue())


def test_png_decodes_exactly():
    big = RNG.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    msg = encode_with_pil(big, "PNG")
    assert compressed_size(msg) == (40, 60)
    np.testing.assert_array_equal(compressed_to_rgb(msg), big)
    out, transform = decode_for_network(msg, (20, 30))
    np.testing.assert_array_equal(out, transform.apply_to_image(big))


def test_jpeg_decodes_close_to_an_independent_decoder():
    smooth = cv2.GaussianBlur(RNG.integers(0, 256, size=(64, 96, 3), dtype=np.uint8), (9, 9), 3)
    msg = encode_with_pil(smooth, "JPEG", quality=95)
    reference = np.asarray(PILImage.open(io.BytesIO(bytes(msg.data))).convert("RGB"))
    diff = np.abs(compressed_to_rgb(msg).astype(int) - reference)
    assert diff.mean() < 1.0 and diff.max() <= 8


def test_reduction_is_the_largest_that_still_covers_the_resize():
    fit = ImageTransform.resize_crop_bottom
    assert jpeg_reduction((900, 1600), fit((900, 1600), (256, 704))) == 2  # resize to 396x704 <= 450x800
    assert jpeg_reduction((900, 1600), fit((900, 1600), (64, 176))) == 4  # 1/8 would give 112.5 rows
    assert jpeg_reduction((896, 1600), fit((896, 1600), (64, 176))) == 8  # 98x176 <= 112x200
    assert jpeg_reduction((900, 1600), fit((900, 1600), (512, 1408))) == 1


@pytest.mark.parametrize("out_size", [(256, 704), (64, 176)])
def test_reduced_jpeg_decode_matches_full_decode_then_resize(nuscenes_frame_dir, out_size):
    path = sorted(nuscenes_frame_dir.glob("*CAM_FRONT__*.jpg"))[0]
    msg = CompressedImage(format="jpeg", data=path.read_bytes())
    out, transform = decode_for_network(msg, out_size)
    assert out.shape == (*out_size, 3) and out.dtype == np.uint8
    assert transform == ImageTransform.resize_crop_bottom((900, 1600), out_size)
    reference = transform.apply_to_image(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    diff = np.abs(out.astype(int) - reference)
    assert diff.mean() < 1.5, diff.mean()  # DCT-domain downscale vs area resize; a 1-pixel shift gives > 3
    # The returned transform maps the real intrinsics: the principal point lands where it should.
    k = np.array([[1266.4, 0, 816.3], [0, 1266.4, 491.5], [0, 0, 1]])
    k2 = transform.apply_to_intrinsics(k)
    np.testing.assert_allclose(k2[:2, 2], transform.apply_to_pixels(k[None, :2, 2])[0])


def test_corrupt_and_unknown_compressed_data(nuscenes_frame_dir):
    data = sorted(nuscenes_frame_dir.glob("*.jpg"))[0].read_bytes()
    truncated = CompressedImage(format="jpeg", data=data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"/CAM_FRONT: corrupt or truncated jpeg"):
        decode_for_network(truncated, (256, 704), source="/CAM_FRONT")
    garbage = CompressedImage(format="jpeg", data=b"\x00\x01garbage" * 10)
    with pytest.raises(ImageDecodeError, match=r"neither JPEG nor PNG \(format 'jpeg', first bytes 0001"):
        decode_for_network(garbage, (256, 704))
    broken_header = CompressedImage(format="jpeg", data=images.JPEG_MAGIC + b"\x00" * 20)
    with pytest.raises(ImageDecodeError):
        decode_for_network(broken_header, (256, 704))


def test_decode_cameras_in_parallel_equals_one_by_one(nuscenes_frame_dir):
    msgs = [CompressedImage(format="jpeg", data=p.read_bytes()) for p in sorted(nuscenes_frame_dir.glob("*.jpg"))]
    msgs.append(raw_message("bgr8", pad=3))
    serial, transforms = decode_cameras(msgs, (64, 176))
    assert serial.shape == (7, 64, 176, 3) and serial.dtype == np.uint8 and len(transforms) == 7
    for image, msg in zip(serial, msgs, strict=True):
        np.testing.assert_array_equal(image, decode_for_network(msg, (64, 176))[0])
    with ThreadPoolExecutor(2) as pool:
        parallel, transforms_p = decode_cameras(msgs, (64, 176), executor=pool)
    np.testing.assert_array_equal(parallel, serial)
    assert transforms_p == transforms
    msgs[3] = CompressedImage(format="jpeg", data=msgs[3].data[:1000])
    with pytest.raises(ImageDecodeError, match="CAM_D: corrupt or truncated jpeg"):
        decode_cameras(msgs, (64, 176), sources=["CAM_A", "CAM_B", "CAM_C", "CAM_D", "E", "F", "G"])
    with pytest.raises(ValueError, match="7 image messages but 1 source names"):
        decode_cameras(msgs, (64, 176), sources=["CAM_A"])


def test_decode_for_network_rejects_other_types():
    with pytest.raises(TypeError, match="expected sensor_msgs/Image or CompressedImage, got str"):
        decode_for_network("x", (4, 4))


@pytest.mark.skipif(not images.have_cv_bridge(), reason="cv_bridge is not importable (not on PyPI)")
@pytest.mark.parametrize(("encoding", "pad", "big"), [c for c in RAW_CASES if c[0] != "mono16"])
def test_numpy_path_matches_cv_bridge(encoding, pad, big):
    msg = raw_message(encoding, pad, big)
    np.testing.assert_array_equal(numpy_image_to_rgb(msg), images._CvBridge().imgmsg_to_cv2(msg, "rgb8"))


def smooth_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """A known image with smooth colour gradients (what demosaicing and chroma subsampling reproduce well)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 9.0)
    g = 128 + 100 * np.cos(y / 7.0)
    b = 40 + 3 * x + 1.5 * y
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


BAYER_CODES = {
    "rggb": cv2.COLOR_BayerRGGB2RGB,
    "bggr": cv2.COLOR_BayerBGGR2RGB,
    "gbrg": cv2.COLOR_BayerGBRG2RGB,
    "grbg": cv2.COLOR_BayerGRBG2RGB,
}


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The Bayer mosaic a sensor with `pattern` (colours of the top-left 2x2 block, row by row) records."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for i, colour in enumerate(pattern):
        dy, dx = divmod(i, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    return out


def laid_out(pixels: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> Image:
    """An Image message of `pixels` ((H, W) or (H, W, C), uint8 or uint16) with `pad` bytes after each row."""
    height, width = pixels.shape[:2]
    data = pixels.astype(">u2" if big else "<u2") if pixels.dtype == np.uint16 else pixels
    rows = data.reshape(height, -1).view(np.uint8).reshape(height, -1)
    rows = np.concatenate([rows, np.full((height, pad), 0xEE, np.uint8)], axis=1)
    return Image(
        height=height, width=width, encoding=encoding, is_bigendian=big, step=rows.shape[1], data=rows.tobytes()
    )


@pytest.mark.parametrize("pattern", list(BAYER_CODES))
@pytest.mark.parametrize(("bits", "pad", "big"), [(8, 0, False), (8, 5, False), (16, 0, False), (16, 4, True)])
def test_bayer_images_decode_as_opencv_demosaics_them_and_give_back_the_known_image(pattern, bits, pad, big):
    known = smooth_rgb()
    raw = mosaic(known, pattern)
    if bits == 16:
        raw = raw.astype(np.uint16) * 257  # full 16-bit range; the high byte is the 8-bit value
    msg = laid_out(raw, f"bayer_{pattern}{bits}", pad, big)
    images.check_image(msg, "camera")
    got = image_to_rgb(msg, "camera")
    opencv = cv2.cvtColor(raw, BAYER_CODES[pattern])
    np.testing.assert_array_equal(got, (opencv >> 8).astype(np.uint8) if bits == 16 else opencv)
    inner = (slice(2, -2), slice(2, -2))  # demosaicing guesses at the border
    error = np.abs(got[inner].astype(int) - known[inner]).mean()
    swapped = np.abs(got[inner].astype(int) - known[inner][..., ::-1]).mean()
    assert error < 4 and swapped > 20, (error, swapped)  # red and blue where they belong


@pytest.mark.parametrize(
    ("encoding", "encode", "decode"),
    [
        ("yuv422", cv2.COLOR_RGB2YUV_UYVY, cv2.COLOR_YUV2RGB_UYVY),
        ("uyvy", cv2.COLOR_RGB2YUV_UYVY, cv2.COLOR_YUV2RGB_UYVY),
        ("yuv422_yuy2", cv2.COLOR_RGB2YUV_YUY2, cv2.COLOR_YUV2RGB_YUY2),
        ("yuyv", cv2.COLOR_RGB2YUV_YUY2, cv2.COLOR_YUV2RGB_YUY2),
    ],
)
@pytest.mark.parametrize("pad", [0, 6])
def test_yuv422_images_decode_as_opencv_converts_them_and_give_back_the_known_image(encoding, encode, decode, pad):
    known = smooth_rgb()
    packed = cv2.cvtColor(known, encode)  # (H, W, 2): two bytes per pixel, U and V shared by a pixel pair
    assert packed.shape == (*known.shape[:2], 2)
    msg = laid_out(packed, encoding, pad)
    images.check_image(msg, "usb camera")
    got = image_to_rgb(msg, "usb camera")
    np.testing.assert_array_equal(got, cv2.cvtColor(packed, decode))
    error = np.abs(got.astype(int) - known).mean()
    assert error < 4, error
    other = "yuv422_yuy2" if encoding in ("yuv422", "uyvy") else "yuv422"  # the other byte order is far off
    assert np.abs(image_to_rgb(laid_out(packed, other, pad)).astype(int) - known).mean() > 20


def test_yuv422_with_an_odd_width_is_refused():
    msg = laid_out(np.zeros((4, 5, 2), np.uint8), "yuv422_yuy2")
    with pytest.raises(ImageDecodeError, match="yuv422_yuy2 needs an even width"):
        image_to_rgb(msg, "usb camera")


@pytest.mark.parametrize("encoding", ["bayer_grbg8", "bayer_bggr16", "yuv422", "yuv422_yuy2"])
def test_decode_for_network_demosaics_before_it_resizes(encoding):
    known = smooth_rgb()
    if encoding.startswith("bayer"):
        raw = mosaic(known, encoding[6:10])
        raw = raw.astype(np.uint16) * 257 if encoding.endswith("16") else raw
    else:
        raw = cv2.cvtColor(known, cv2.COLOR_RGB2YUV_UYVY if encoding == "yuv422" else cv2.COLOR_RGB2YUV_YUY2)
    msg = laid_out(raw, encoding)
    got, transform = decode_for_network(msg, (24, 40))
    np.testing.assert_array_equal(got, transform.apply_to_image(image_to_rgb(msg)))
    assert np.abs(got.astype(int) - transform.apply_to_image(known)).mean() < 4
