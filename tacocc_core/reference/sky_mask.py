"""The slower setting of `tacocc_core.conditioning.sky_mask` that the defaults are compared with.

Full 176 px work width, 10 SLIC iterations, scikit-image's CIELAB conversion: the tests require the
default (fast) masks of the real cameras to agree with this setting's masks.
"""

from __future__ import annotations

from dataclasses import replace

from tacocc_core.conditioning.sky_mask import SkyMaskParams

REFERENCE_SKY_PARAMS = replace(SkyMaskParams(), work_width=176, iterations=10, opencv_lab=False)
