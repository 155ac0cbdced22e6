"""Imagic: text-based real image editing (embedding optimisation, fine-tuning, interpolation)."""
