"""pix2pix-zero: Zero-shot Image-to-Image Translation (Parmar et al., SIGGRAPH 2023)."""
