"""Fine-tuning Diffusion Models with Limited Data (Moon et al., 2022): A3FT, reconstructed.

Attention-only fine-tuning plus time-aware adapters on a pretrained pixel diffusion UNet,
against naive (full) fine-tuning. See the package README for what is known and what is ours.
"""
