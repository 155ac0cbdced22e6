"""ADIR: Adaptive Diffusion for Image Reconstruction."""
