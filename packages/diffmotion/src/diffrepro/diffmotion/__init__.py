"""DiffMotion: Speech-Driven Gesture Synthesis Using Denoising Diffusion Model."""
