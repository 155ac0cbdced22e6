"""MaskSketch (Bashkirova et al., CVPR 2023): sketch-guided sampling of a pretrained MaskGIT."""
