"""Input conditioning before the encoders (paper Fig. 1): sky masks for the images, LiDAR denoising."""
