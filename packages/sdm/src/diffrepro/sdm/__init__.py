"""SDM: Spatial Diffusion Model for Large Hole Image Inpainting."""
