"""Unsupervised sky masks: superpixels, a colour/texture test, and a position prior.

No trained weights. A pixel passes the sky test when it is smooth (low Sobel gradient), brighter
than the image's median, and either blue (CIELAB b* below `max_blue_b`, clear sky) or near white
(lightness above `min_white_lightness`, overcast sky and clouds). Grey concrete and glass are smooth
and bright too; they fail by being neither blue enough nor white enough, which is the weakest part of
the test (bluish-grey glass can pass). The image is cut into SLIC superpixels (scikit-image); a
superpixel is a sky candidate when most of its pixels pass and its centroid lies above
`max_centroid_row` of the image height. The sky is the set of candidates connected, through
candidate neighbours, to a superpixel touching the top border: the sky is seen from the top edge
downwards, so a bright smooth panel lower in the image that is not joined to the top is kept. Within
sky superpixels, pixels that are both textured and not sky-coloured are left out, which trims
superpixels that straddle the skyline. At night nothing passes the brightness test and the mask is empty, the safe side.

Cost: at inference the mask only blanks input pixels that the image trunk sees at stride 8-16, so the
defaults segment a small copy of the image (88 px wide), run 2 k-means iterations of SLIC on a float32
CIELAB image from OpenCV, and `sky_masks_of_images` does all cameras of a frame together after their
superpixels (one pass of array work instead of one per camera). The unit tests compare these defaults with a
slower setting, `tacocc_core.reference.sky_mask.REFERENCE_SKY_PARAMS` (176 px, 10 iterations, scikit-image's
CIELAB).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.filters import gaussian
from skimage.segmentation import slic


@dataclass(frozen=True)
class SkyMaskParams:
    """Thresholds of the sky test.

    Args:
        work_width: the image is resized to this width (keeping its aspect) before segmentation.
        segments: approximate number of SLIC superpixels.
        compactness: SLIC compactness (Lab units); higher gives more regular superpixels.
        iterations: k-means iterations of SLIC.
        opencv_lab: segment a float32 CIELAB image made by OpenCV (faster); False lets scikit-image convert.
        max_gradient: a sky superpixel's mean Sobel gradient magnitude of grey in [0, 1] is below this.
        min_lightness: a sky superpixel's mean CIELAB lightness (0..100) is above this.
        min_relative_lightness: ... and above this multiple of the image's median lightness.
        max_blue_b: a blue sky superpixel has mean CIELAB b* below this.
        min_white_lightness: a superpixel this light (and smooth) counts as white sky or cloud, whatever its b*.
        max_centroid_row: a sky superpixel's centroid lies above this fraction of the image height.
        min_share: more than this fraction of a sky superpixel's pixels pass the pixel test.
    """

    work_width: int = 88
    segments: int = 120
    compactness: float = 10.0
    iterations: int = 2  # a third changes no mask of the real nuScenes cameras (test_sky_mask.py)
    opencv_lab: bool = True
    max_gradient: float = 0.06
    min_lightness: float = 50.0
    min_relative_lightness: float = 1.1
    max_blue_b: float = -6.0
    min_white_lightness: float = 80.0
    max_centroid_row: float = 0.6
    min_share: float = 0.5


def sky_mask(image: np.ndarray, params: SkyMaskParams = SkyMaskParams()) -> np.ndarray:
    """Sky pixels of one RGB image.

    Args:
        image: (H, W, 3) uint8 RGB.
        params: thresholds of the test.

    Returns:
        (H, W) bool, True on the sky.
    """
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        shape = getattr(image, "shape", None)
        raise ValueError(f"sky_mask: expected an (H, W, 3) uint8 RGB image, got {shape} {getattr(image, 'dtype', '')}")
    h, w = image.shape[:2]
    if h < 2 or w < 2 or not image.any():
        return np.zeros((h, w), dtype=bool)
    ww = min(w, params.work_width)
    wh = max(2, round(h * ww / w))
    small = cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA) if (ww, wh) != (w, h) else image
    labels = _superpixels(small, params)
    n = int(labels.max()) + 1

    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    lightness = lab[:, :, 0] * (100.0 / 255.0)  # OpenCV stores 8-bit L as L * 255 / 100, b* + 128
    blue_yellow = lab[:, :, 2] - 128.0
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gradient = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)) / 4.0
    rows = np.broadcast_to(np.arange(wh, dtype=np.float32)[:, None], (wh, ww))

    # Per pixel: smooth, and sky-coloured (blue, or near white) and bright enough.
    sky_colour = ((blue_yellow < params.max_blue_b) | (lightness > params.min_white_lightness)) & (
        lightness > max(params.min_lightness, params.min_relative_lightness * float(np.median(lightness)))
    )
    smooth_sky = sky_colour & (gradient < params.max_gradient)
    # Per superpixel: mostly smooth sky-coloured pixels, centroid above the row prior.
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float32)
    share = np.bincount(flat, smooth_sky.ravel().astype(np.float32), n) / np.maximum(count, 1)
    mean_row = np.bincount(flat, rows.ravel(), n) / np.maximum(count, 1)
    candidate = (count > 0) & (share > params.min_share) & (mean_row < params.max_centroid_row * wh)

    # Superpixel adjacency from horizontally and vertically neighbouring pixels, candidates only.
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], axis=1),
        ]
    )
    pairs = pairs[candidate[pairs[:, 0]] & candidate[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    top = np.unique(labels[0])
    seeds = top[candidate[top]]
    sky_segments = candidate & np.isin(component, component[seeds])
    # Superpixels on the skyline: drop their pixels that are textured and not sky-coloured (foliage, edges).
    mask = sky_segments[labels] & (sky_colour | (gradient < params.max_gradient))
    if mask.shape != (h, w):
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return mask


SLIC_SIGMA = 1.0  # pixels: scikit-image's pre-smoothing of the image SLIC segments


def _slic_args(params: SkyMaskParams) -> dict:
    return dict(
        n_segments=params.segments, compactness=params.compactness, start_label=0, max_num_iter=params.iterations
    )


def _opencv_lab(small: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> float32 CIELAB (L 0..100) by OpenCV."""
    return cv2.cvtColor(small.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2LAB)


def _superpixels(small: np.ndarray, params: SkyMaskParams) -> np.ndarray:
    """(h, w) int SLIC labels from 0 of an (h, w, 3) uint8 RGB image."""
    if params.opencv_lab:
        return slic(_opencv_lab(small), convert2lab=False, sigma=SLIC_SIGMA, **_slic_args(params))
    return slic(small, sigma=SLIC_SIGMA, **_slic_args(params))


def _superpixels_of_images(small: np.ndarray, params: SkyMaskParams) -> np.ndarray:
    """(n, h, w) SLIC labels from 0 per image of (n, h, w, 3) uint8 RGB images; `_superpixels` of each.

    With OpenCV's Lab, SLIC's Gaussian pre-smoothing runs once over all images (scikit-image's own filter,
    zero width across images and channels, so each image gets the same numbers bit for bit) and SLIC is
    then called without smoothing: one filter call per frame instead of one per camera.
    """
    if not params.opencv_lab:
        return np.stack([_superpixels(image, params) for image in small])
    lab = _opencv_lab(small.reshape(-1, small.shape[2], 3)).reshape(small.shape)
    smooth = gaussian(lab, sigma=[0, SLIC_SIGMA, SLIC_SIGMA, 0], mode="reflect", preserve_range=True)
    return np.stack([slic(image, convert2lab=False, sigma=0, **_slic_args(params)) for image in smooth])


def sky_masks_of_images(images: np.ndarray, params: SkyMaskParams = SkyMaskParams()) -> np.ndarray:
    """Sky pixels of several RGB images of one size: `sky_mask` of each, computed together.

    The same test as `sky_mask` (its reference twin, equal mask for mask): SLIC runs per image, everything
    after it runs once over all images (superpixel labels offset per image, one adjacency graph with no
    edge between images), which takes the per-image Python overhead out of the frame.

    Args:
        images: (N, H, W, 3) uint8 RGB.
        params: thresholds of the test.

    Returns:
        (N, H, W) bool, True on the sky.
    """
    if not (isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[3] == 3 and images.dtype == np.uint8):
        shape = getattr(images, "shape", None)
        raise ValueError(
            f"sky_masks_of_images: expected (N, H, W, 3) uint8 RGB images, got {shape} {getattr(images, 'dtype', '')}"
        )
    count, h, w = images.shape[:3]
    out = np.zeros((count, h, w), dtype=bool)
    lit = [i for i in range(count) if images[i].any()]
    if h < 2 or w < 2 or not lit:
        return out
    ww = min(w, params.work_width)
    wh = max(2, round(h * ww / w))
    resize = (ww, wh) != (w, h)
    small = np.stack(
        [cv2.resize(images[i], (ww, wh), interpolation=cv2.INTER_AREA) if resize else images[i] for i in lit]
    )
    labels = _superpixels_of_images(small, params)  # (n, wh, ww), from 0 per image
    offsets = np.concatenate([[0], np.cumsum(labels.reshape(len(lit), -1).max(axis=1) + 1)])
    labels = labels + offsets[:-1, None, None]
    n = int(offsets[-1])

    tall = small.reshape(len(lit) * wh, ww, 3)  # per-pixel conversions: stacking changes nothing
    lab = cv2.cvtColor(tall, cv2.COLOR_RGB2LAB).astype(np.float32).reshape(len(lit), wh, ww, 3)
    lightness = lab[..., 0] * (100.0 / 255.0)
    blue_yellow = lab[..., 2] - 128.0
    grey = cv2.cvtColor(tall, cv2.COLOR_RGB2GRAY).astype(np.float32).reshape(len(lit), wh, ww) / 255.0
    gradient = np.stack(
        [np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)) / 4.0 for g in grey]
    )
    rows = np.broadcast_to(np.arange(wh, dtype=np.float32)[None, :, None], labels.shape)

    bright = np.maximum(params.min_lightness, params.min_relative_lightness * np.median(lightness, axis=(1, 2)))
    sky_colour = ((blue_yellow < params.max_blue_b) | (lightness > params.min_white_lightness)) & (
        lightness > bright[:, None, None]
    )
    smooth_sky = sky_colour & (gradient < params.max_gradient)
    flat = labels.ravel()
    pixels = np.bincount(flat, minlength=n).astype(np.float32)
    share = np.bincount(flat, smooth_sky.ravel().astype(np.float32), n) / np.maximum(pixels, 1)
    mean_row = np.bincount(flat, rows.ravel(), n) / np.maximum(pixels, 1)
    candidate = (pixels > 0) & (share > params.min_share) & (mean_row < params.max_centroid_row * wh)

    pairs = np.concatenate(
        [
            np.stack([labels[:, :, :-1].ravel(), labels[:, :, 1:].ravel()], axis=1),
            np.stack([labels[:, :-1, :].ravel(), labels[:, 1:, :].ravel()], axis=1),
        ]
    )
    pairs = pairs[candidate[pairs[:, 0]] & candidate[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    top = np.unique(labels[:, 0, :])
    seeds = top[candidate[top]]
    sky_segments = candidate & np.isin(component, component[seeds])
    masks = sky_segments[labels] & (sky_colour | (gradient < params.max_gradient))
    for slot, i in enumerate(lit):
        mask = masks[slot]
        if mask.shape != (h, w):
            mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        out[i] = mask
    return out


def sky_masks(images: torch.Tensor, params: SkyMaskParams = SkyMaskParams()) -> torch.Tensor:
    """Sky masks of a batch of camera images (computed on the CPU, returned on the images' device).

    Args:
        images: (B, V, 3, H, W) uint8 RGB.
        params: thresholds of the test.

    Returns:
        (B, V, H, W) bool.
    """
    if images.ndim != 5 or images.shape[2] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"sky_masks: expected (B, V, 3, H, W) uint8 images, got {tuple(images.shape)} {images.dtype}")
    b, v, _, h, w = images.shape
    # torch lays out the permuted copy (quicker than numpy copying the permuted view)
    hwc = images.detach().permute(0, 1, 3, 4, 2).contiguous().cpu().numpy().reshape(b * v, h, w, 3)
    return torch.from_numpy(sky_masks_of_images(hwc, params).reshape(b, v, h, w)).to(images.device)
