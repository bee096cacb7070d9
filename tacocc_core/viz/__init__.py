"""Pictures of occupancy grids for people: bird's-eye views, 3D voxel views, camera mosaics, animations.

Pure numpy + Pillow, no display needed. Every function returns an (H, W, 3) uint8 RGB image; writing
files goes through `image_io` (temp name + rename).
"""
