import torch

from diffrepro.masksketch.guidance import guided_logits, uncond_class, unconditional_sequences

K, C = 16, 3


class Recorder:
    def __init__(self):
        self.seen = []
        gen = torch.Generator().manual_seed(0)
        self.table = torch.randn(K + C + 1, K + C + 1, generator=gen, dtype=torch.float64)

    def __call__(self, tokens):
        self.seen.append(tokens.clone())
        return self.table[tokens] + self.table[tokens[:, :1]]  # depends on the class token


def tokens(batch=5):
    t = torch.randint(0, K, (batch, 9), generator=torch.Generator().manual_seed(1))
    t[:, 0] = K + 2
    return t


def test_guidance_zero_is_the_conditional_model():
    model = Recorder()
    assert guided_logits(model, 0.0, K) is model


def test_guided_logits_follow_the_cfg_formula_with_the_uncond_class_in_every_row():
    model, seq = Recorder(), tokens()
    out = guided_logits(model, 0.6, K + 1)(seq)
    (both,) = model.seen
    cond, free = both[:5], both[5:]
    assert torch.equal(cond, seq)
    assert (free[:, 0] == K + 1).all() and torch.equal(free[:, 1:], seq[:, 1:])
    lc, lu = model(seq), model(free)
    torch.testing.assert_close(out, lc + 0.6 * (lc - lu))


def test_official_quirk_reaches_only_the_first_two_rows():
    seq = tokens()
    quirk = unconditional_sequences(seq, K, "first-two")
    assert quirk[:2, 0].tolist() == [K, K] and torch.equal(quirk[2:], seq[2:])
    model = Recorder()
    out = guided_logits(model, 0.6, K, "first-two")(seq)
    torch.testing.assert_close(out[2:], model(seq)[2:])  # no guidance in rows 2..


def test_random_unconditional_class_is_a_real_class():
    gen = torch.Generator().manual_seed(0)
    draws = {uncond_class(K, C, gen) for _ in range(200)}
    assert draws == set(range(K, K + C))
