"""Textual Inversion (Gal et al., 2022): learn new pseudo-word embeddings for a frozen
text-to-image model from 3-5 images of a concept."""
