"""The dense-convolution rate of this machine in fp32 and bf16: the denominator of a frame's floor.

Times the two kinds of dense convolution that carry most of the nuScenes preset's FLOPs, eval mode, no
autograd: the temporal aggregator's 3x3x3 Conv3d (128 -> 256 channels on 100 x 100 x 8) and a ResNet
3x3 Conv2d (256 -> 256 channels, six 16 x 44 maps). Each in float32, and in bf16 under CPU autocast (what
`--precision bf16` runs). FLOPs count a multiply-add as two. Prints the best of `--repeats` per case, in
GFLOP/s, and whether this CPU computes bf16 in hardware.

    OMP_NUM_THREADS=2 python -m benchmarks.speed.conv_rate
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch import nn

from tacocc_core.predictor import native_bf16


def best_seconds(step, repeats: int) -> float:
    step()  # warm-up: oneDNN picks and caches its kernels on the first call
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [
        ("Conv3d 128->256, 3x3x3, 100x100x8", nn.Conv3d(128, 256, 3, padding=1), (1, 128, 100, 100, 8)),
        ("Conv2d 256->256, 3x3, 6 x 16x44", nn.Conv2d(256, 256, 3, padding=1), (6, 256, 16, 44)),
    ]
    cpu = torch.device("cpu")
    print(f"{torch.get_num_threads()} torch threads; bf16 native on this CPU: {native_bf16(cpu)}")
    for name, conv, shape in cases:
        conv = conv.eval()
        x = torch.randn(shape)
        with torch.inference_mode():
            out = conv(x)
        kernel = conv.weight[0].numel()  # C_in x kernel volume
        flops = 2 * kernel * out.numel()
        for dtype in ("fp32", "bf16"):
            autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
            with torch.inference_mode(), autocast:
                seconds = best_seconds(lambda c=conv, i=x: c(i), args.repeats)
            rate = flops / seconds / 1e9
            print(f"{name:<36} {dtype}: {flops / 1e9:6.1f} GFLOP in {seconds * 1e3:7.1f} ms = {rate:5.0f} GFLOP/s")


if __name__ == "__main__":
    main()
