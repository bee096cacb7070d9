"""sensor_msgs/Image and CompressedImage -> RGB uint8, decoded straight to the network's input size.

Raw images: rgb8, bgr8, rgba8, bgra8, mono8, mono16; the Bayer mosaics of machine-vision cameras
(bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8 and their 16-bit forms), demosaiced by OpenCV; and
the YUV 4:2:2 of USB cameras (usb_cam, v4l2_camera): yuv422 / uyvy (U Y0 V Y1) and yuv422_yuy2 / yuyv
(Y0 U Y1 V), converted by OpenCV (BT.601). 16-bit data in either endianness; rows padded to `step` or
not. A 16-bit image keeps its high byte (value >> 8, after demosaicing), so 65535 -> 255 and a 12-bit
camera's top bits are lost only below 256.
Compressed images: JPEG and PNG, recognised by their magic bytes (the `format` string of
CompressedImage is free text). A JPEG is decoded at 1/2, 1/4 or 1/8 size inside libjpeg when the network
input is at most that large (OpenCV's IMREAD_REDUCED_COLOR_*), which skips most of the inverse DCT work;
the exact resize + crop to the network size is then done by `tacocc_core.geometry.ImageTransform`.

`decode_for_network` returns the ImageTransform of the full-size image, so that the camera intrinsics
from CameraInfo are updated with `transform.apply_to_intrinsics(K)` whatever reduction the decoder used.

cv_bridge converts rgb8, bgr8, rgba8, bgra8 and mono8 where it is importable (a ROS 2 install); the
OpenCV path here runs otherwise and always for the other encodings (cv_bridge's 16 -> 8 bit scaling is
its own rule, not ours).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import cv2
import numpy as np
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image

from tacocc_core.geometry import ImageTransform

try:  # a ROS 2 install; cv_bridge's Python part is not on PyPI
    from cv_bridge import CvBridge as _CvBridge
except ImportError:
    _CvBridge = None

# encoding -> (channels, bytes per channel, OpenCV conversion to RGB or None when already RGB)
RAW_ENCODINGS: dict[str, tuple[int, int, int | None]] = {
    "rgb8": (3, 1, None),
    "bgr8": (3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": (4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": (1, 1, cv2.COLOR_GRAY2RGB),
    "mono16": (1, 2, cv2.COLOR_GRAY2RGB),
    # ROS names the 2x2 pattern from the top-left pixel; OpenCV's RGGB/BGGR/... aliases name it the same way.
    "bayer_rggb8": (1, 1, cv2.COLOR_BayerRGGB2RGB),
    "bayer_bggr8": (1, 1, cv2.COLOR_BayerBGGR2RGB),
    "bayer_gbrg8": (1, 1, cv2.COLOR_BayerGBRG2RGB),
    "bayer_grbg8": (1, 1, cv2.COLOR_BayerGRBG2RGB),
    "bayer_rggb16": (1, 2, cv2.COLOR_BayerRGGB2RGB),
    "bayer_bggr16": (1, 2, cv2.COLOR_BayerBGGR2RGB),
    "bayer_gbrg16": (1, 2, cv2.COLOR_BayerGBRG2RGB),
    "bayer_grbg16": (1, 2, cv2.COLOR_BayerGRBG2RGB),
    "yuv422": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
}
CV_BRIDGE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
PER_PIXEL = (*CV_BRIDGE_ENCODINGS, "mono16")  # converted pixel by pixel: resizing first gives the same image
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}
_REDUCED_FLAGS[8] = cv2.IMREAD_REDUCED_COLOR_8
# The largest compressed image decoded (8192 x 8192): a larger header is a corrupt or hostile file, not a camera.
MAX_COMPRESSED_PIXELS = 8192 * 8192

FitFn = Callable[[tuple[int, int], tuple[int, int]], ImageTransform]


class ImageDecodeError(ValueError):
    """An image message that cannot be decoded: unknown encoding, inconsistent size, corrupt data."""


def have_cv_bridge() -> bool:
    """True where cv_bridge (ROS 2 install) is importable and converts raw 8-bit images."""
    return _CvBridge is not None


def _raw_pixels(msg: Image, source: str) -> tuple[np.ndarray, int | None]:
    """(H, W, C) or (H, W) uint8 / uint16 pixels in the message's channel order, + the cv2 code to RGB."""
    if msg.encoding not in RAW_ENCODINGS:
        raise ImageDecodeError(
            f"{source}: unsupported image encoding {msg.encoding!r}; supported: {', '.join(RAW_ENCODINGS)}"
        )
    channels, depth, to_rgb = RAW_ENCODINGS[msg.encoding]
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise ImageDecodeError(f"{source}: empty {width}x{height} image")
    if channels == 2 and width % 2:
        raise ImageDecodeError(f"{source}: {msg.encoding} needs an even width (two pixels share U and V), got {width}")
    row = width * channels * depth
    if step < row:
        raise ImageDecodeError(f"{source}: step {step} < width {width} x {channels * depth} bytes per pixel")
    if len(msg.data) < step * (height - 1) + row:
        raise ImageDecodeError(
            f"{source}: data holds {len(msg.data)} bytes, {msg.encoding} {width}x{height} with step {step} "
            f"needs {step * height}; truncated image"
        )
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(height, row), strides=(step, 1))
    if depth == 2:
        return rows.copy().view(">u2" if msg.is_bigendian else "<u2").astype(np.uint16).reshape(height, width), to_rgb
    return rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width), to_rgb


def image_to_rgb(msg: Image, source: str = "Image") -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB (a new array)."""
    if _CvBridge is not None and msg.encoding in CV_BRIDGE_ENCODINGS:
        _raw_pixels(msg, source)  # the same checks and errors on both paths
        return np.ascontiguousarray(_CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    return numpy_image_to_rgb(msg, source)


def numpy_image_to_rgb(msg: Image, source: str = "Image") -> np.ndarray:
    """The numpy path of `image_to_rgb`, used where cv_bridge is not importable."""
    pixels, to_rgb = _raw_pixels(msg, source)
    rgb = np.ascontiguousarray(pixels) if to_rgb is None else cv2.cvtColor(np.ascontiguousarray(pixels), to_rgb)
    return np.right_shift(rgb, 8).astype(np.uint8) if rgb.dtype == np.uint16 else rgb


def compressed_kind(msg: CompressedImage, source: str = "CompressedImage") -> str:
    """'jpeg' or 'png', from the magic bytes; ImageDecodeError for anything else."""
    head = bytes(msg.data[:8])
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    raise ImageDecodeError(
        f"{source}: compressed data is neither JPEG nor PNG (format {msg.format!r}, first bytes {head.hex()})"
    )


def compressed_size(msg: CompressedImage, source: str = "CompressedImage") -> tuple[int, int]:
    """(height, width) of a JPEG/PNG from its header, without decoding the pixels.

    ImageDecodeError for an unreadable header or one larger than MAX_COMPRESSED_PIXELS.
    """
    compressed_kind(msg, source)
    try:
        with PILImage.open(io.BytesIO(msg.data)) as im:
            width, height = im.size
    except (OSError, ValueError, PILImage.DecompressionBombError) as err:
        raise ImageDecodeError(f"{source}: unreadable image header ({err})") from None
    if width * height > MAX_COMPRESSED_PIXELS:  # refused before the decoder allocates width x height x 3 bytes
        raise ImageDecodeError(
            f"{source}: header says {width}x{height} = {width * height} pixels, more than {MAX_COMPRESSED_PIXELS}"
        )
    return height, width


def compressed_to_bgr(msg: CompressedImage, reduction: int = 1, source: str = "CompressedImage") -> np.ndarray:
    """JPEG/PNG -> (H', W', 3) uint8 BGR; a JPEG is decoded at 1/`reduction` size (1, 2, 4 or 8)."""
    if reduction not in _REDUCED_FLAGS:
        raise ValueError(f"reduction must be one of {sorted(_REDUCED_FLAGS)}, got {reduction}")
    kind = compressed_kind(msg, source)
    flag = _REDUCED_FLAGS[reduction] if kind == "jpeg" else cv2.IMREAD_COLOR
    # Pixels as stored: an EXIF orientation tag would otherwise transpose the image against its header size.
    image = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ImageDecodeError(f"{source}: corrupt or truncated {kind} ({len(msg.data)} bytes)")
    return image


def compressed_to_rgb(msg: CompressedImage, source: str = "CompressedImage") -> np.ndarray:
    """JPEG/PNG -> (H, W, 3) uint8 RGB at full size."""
    return cv2.cvtColor(compressed_to_bgr(msg, 1, source), cv2.COLOR_BGR2RGB)


def jpeg_reduction(in_size: tuple[int, int], transform: ImageTransform) -> int:
    """The largest libjpeg reduction (1, 2, 4, 8) whose decoded image is still no smaller than the resize.

    Only a reduction that divides both sides is taken: libjpeg rounds a partial last block up to a whole
    pixel, which would stretch the image by a fraction of a pixel (900 / 8 = 112.5 -> 113 rows).
    """
    height, width = in_size
    want_w, want_h = round(width * transform.scale[0]), round(height * transform.scale[1])
    for r in (8, 4, 2):
        if width % r == 0 and height % r == 0 and width // r >= want_w and height // r >= want_h:
            return r
    return 1


def check_image(msg: Image | CompressedImage, source: str = "image") -> None:
    """The cheap checks of an image message, without decoding its pixels (a JPEG's header only).

    Raw: a known encoding, a non-empty size, `step` at least one row, data at least `step` x rows.
    Compressed: JPEG or PNG magic bytes and a readable header. A corrupt compressed body passes and
    fails later in `decode_for_network`. Raises ImageDecodeError naming `source`.
    """
    if isinstance(msg, CompressedImage):
        compressed_size(msg, source)
    elif isinstance(msg, Image):
        if msg.encoding not in RAW_ENCODINGS:
            raise ImageDecodeError(
                f"{source}: unsupported image encoding {msg.encoding!r}; supported: {', '.join(RAW_ENCODINGS)}"
            )
        _check_raw_size(msg, source)
    else:
        raise TypeError(f"{source}: expected sensor_msgs/Image or CompressedImage, got {type(msg).__name__}")


def _check_raw_size(msg: Image, source: str) -> None:
    channels, depth, _ = RAW_ENCODINGS[msg.encoding]
    row = msg.width * channels * depth
    if msg.height == 0 or msg.width == 0:
        raise ImageDecodeError(f"{source}: empty {msg.width}x{msg.height} image")
    if msg.step < row:
        raise ImageDecodeError(f"{source}: step {msg.step} < width {msg.width} x {channels * depth} bytes per pixel")
    if len(msg.data) < msg.step * (msg.height - 1) + row:
        raise ImageDecodeError(
            f"{source}: data holds {len(msg.data)} bytes, {msg.encoding} {msg.width}x{msg.height} with step "
            f"{msg.step} needs {msg.step * msg.height}; truncated image"
        )


def decode_for_network(
    msg: Image | CompressedImage,
    out_size: tuple[int, int],
    fit: FitFn = ImageTransform.resize_crop_bottom,
    source: str = "image",
) -> tuple[np.ndarray, ImageTransform]:
    """Decode an image message to the network input size.

    Args:
        msg: sensor_msgs/Image or CompressedImage.
        out_size: (height, width) the network takes.
        fit: makes the ImageTransform from (in_size, out_size); the default keeps the aspect ratio and
            crops the top rows (see `ImageTransform.resize_crop_bottom`).
        source: names the topic in errors.

    Returns:
        image: (out_h, out_w, 3) uint8 RGB.
        transform: full-size original pixels -> `image` pixels (apply it to the CameraInfo intrinsics).
    """
    if isinstance(msg, CompressedImage):
        in_size = compressed_size(msg, source)
        transform = fit(in_size, out_size)
        reduction = jpeg_reduction(in_size, transform) if compressed_kind(msg, source) == "jpeg" else 1
        bgr = compressed_to_bgr(msg, reduction, source)
        if bgr.shape[:2] != (in_size[0] // reduction, in_size[1] // reduction):
            raise ImageDecodeError(
                f"{source}: header says {in_size[1]}x{in_size[0]} but 1/{reduction} decode gave "
                f"{bgr.shape[1]}x{bgr.shape[0]}"
            )
        resized_w, resized_h = round(in_size[1] * transform.scale[0]), round(in_size[0] * transform.scale[1])
        h, w = bgr.shape[:2]
        on_decoded = ImageTransform((resized_w / w, resized_h / h), transform.crop, transform.out_size)
        return cv2.cvtColor(on_decoded.apply_to_image(bgr), cv2.COLOR_BGR2RGB), transform
    if isinstance(msg, Image):
        pixels, to_rgb = _raw_pixels(msg, source)
        transform = fit((msg.height, msg.width), out_size)
        if msg.encoding not in PER_PIXEL or (_CvBridge is not None and msg.encoding in CV_BRIDGE_ENCODINGS[1:]):
            return transform.apply_to_image(image_to_rgb(msg, source)), transform  # a mosaic is demosaiced first
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)
        small = transform.apply_to_image(np.ascontiguousarray(pixels))  # per-pixel: resized before converting
        return (small if to_rgb is None else cv2.cvtColor(small, to_rgb)), transform
    raise TypeError(f"{source}: expected sensor_msgs/Image or CompressedImage, got {type(msg).__name__}")


def decode_cameras(
    msgs: Sequence[Image | CompressedImage],
    out_size: tuple[int, int],
    fit: FitFn = ImageTransform.resize_crop_bottom,
    sources: Sequence[str] | None = None,
    executor: Executor | None = None,
) -> tuple[np.ndarray, list[ImageTransform]]:
    """Decode one image per camera into the `Frame.images` layout.

    OpenCV's decode and resize release the GIL, so an `executor` (a ThreadPoolExecutor the node keeps)
    decodes the cameras in parallel; without one they are decoded in turn. The first failing camera's
    ImageDecodeError propagates.

    Returns:
        images: (V, out_h, out_w, 3) uint8 RGB, in the order of `msgs`.
        transforms: V full-size -> network-size ImageTransforms.
    """
    names = list(sources) if sources is not None else [f"camera {i}" for i in range(len(msgs))]
    if len(names) != len(msgs):
        raise ValueError(f"{len(msgs)} image messages but {len(names)} source names")

    def one(i: int) -> tuple[np.ndarray, ImageTransform]:
        return decode_for_network(msgs[i], out_size, fit, names[i])

    results = list(executor.map(one, range(len(msgs)))) if executor is not None else [one(i) for i in range(len(msgs))]
    out = np.empty((len(msgs), *out_size, 3), dtype=np.uint8)
    for i, (image, _) in enumerate(results):
        out[i] = image
    return out, [t for _, t in results]
