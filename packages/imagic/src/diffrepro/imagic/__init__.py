"""Imagic: text-based real image editing by embedding optimisation, fine-tuning and interpolation."""
