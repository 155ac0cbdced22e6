"""SINE: single-image editing with model-based classifier-free guidance."""
