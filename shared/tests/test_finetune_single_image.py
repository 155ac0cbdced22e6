"""core.finetune additions: the single-image train settings and the count checks."""

from dataclasses import dataclass

import pytest

from diffrepro.core.finetune import check_counts, single_image_train_config


def test_single_image_train_config_is_batch_1_plain_adam_one_checkpoint():
    cfg = single_image_train_config(30, 2e-3, checkpoint_every=500, log_every=7, seed=4)
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.seed, cfg.log_every) == (30, 1, 2e-3, 4, 7)
    assert cfg.weight_decay == 0.0 and cfg.grad_clip is None and cfg.ema_decay is None
    assert cfg.checkpoint_every == 30 and cfg.keep_checkpoints == 1
    cfg = single_image_train_config(
        900, 1e-6, checkpoint_every=100, log_every=1, seed=0, weight_decay=0.01, grad_clip=1.0
    )
    assert cfg.checkpoint_every == 100 and cfg.weight_decay == 0.01 and cfg.grad_clip == 1.0


@dataclass
class Cfg:
    a: object = 1
    b: object = 2


@pytest.mark.parametrize("bad", [0, -1, True, 1.0, "1", None])
def test_check_counts_refuses_what_is_not_an_integer_at_least_one(bad):
    check_counts(Cfg(), "a", "b")
    with pytest.raises(ValueError, match=rf"^b must be an integer >= 1, got {bad!r}$"):
        check_counts(Cfg(b=bad), "a", "b")
    check_counts(Cfg(b=bad), "a")  # only the named fields
