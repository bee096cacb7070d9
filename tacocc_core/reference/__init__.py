"""Reference twins: slow, obviously correct versions of the fast paths, for tests and benchmarks only.

Each module here mirrors one module of the package and holds the plain implementation that its fast path
is compared with in the unit tests (equal results, or within a stated tolerance):

- `lidar_denoise.denoise_mask_reference`: `conditioning.lidar_denoise.denoise_mask`, one filter after the other.
- `voxelize.voxelize_reference`: `model.voxelize.voxelize`, grouping by `torch.unique`.
- `warp.warp_volume_reference`: `model.warp.warp_volume`, trilinear weights voxel by voxel in numpy.
- `tile_composite.tile_composite_reference`: `render.tile_composite.tile_composite`, left to autograd.
- `ewa_cpu.rasterize_reference`: `render.ewa_cpu.rasterize_ewa`, float64, one pixel and one Gaussian at a time.
- `sky_mask.REFERENCE_SKY_PARAMS`: a slower setting of `conditioning.sky_mask` that the defaults are held to.
- `raycast.cast_brute_force`: `data.synthetic.raycast.cast`, every ray against every part.
- `label_resample.block_vote_reference`: `data.label_resample.block_vote`, block by block.
- `bev.top_view_reference`: `viz.bev.top_view`, column by column.
- `raster.nearest_per_pixel_reference`: `viz.raster.nearest_per_pixel`, candidate by candidate.

Nothing outside `test/` and `benchmarks/` imports this package (test/unit/test_reference.py checks it): the
code that runs in the node, the trainer and the tools never depends on a twin.
"""
