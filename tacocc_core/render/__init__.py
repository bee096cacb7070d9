"""Training-time Gaussian renderer (paper Sec. III-B): Gaussian container, temporal weighting, rasterisers."""
