import torch

from diffrepro.core.finetune_fixtures import image, same_state, sd, state_hashes  # noqa: F401

torch.set_num_threads(1)
