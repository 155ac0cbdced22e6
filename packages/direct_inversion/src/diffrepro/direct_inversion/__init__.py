"""Direct Inversion (Elarabawy, Kamath, Denton 2022, arXiv 2211.07825): optimisation-free
text-driven editing by blending the stored DDIM-inversion noise into guided sampling."""
