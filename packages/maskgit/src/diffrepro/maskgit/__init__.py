"""MaskGIT: Masked Generative Image Transformer (Chang et al., CVPR 2022)."""
