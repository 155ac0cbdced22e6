"""VIDM: Video Implicit Diffusion Models."""
