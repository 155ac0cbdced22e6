import math

import torch

from diffrepro.sdm.adversarial import discriminator_loss, generator_loss, r1_penalty
from diffrepro.sdm.likelihood import discretised_gaussian_log_prob, variance_nll


def reference_log_prob(y: float, mean: float, sigma: float) -> float:
    """log(Φ(b) - Φ(a)) in float64 with math.erfc (evaluated on the small-tail side)."""
    a = -math.inf if y <= -1 + 1e-6 else (y - 1 / 255 - mean) / sigma
    b = math.inf if y >= 1 - 1e-6 else (y + 1 / 255 - mean) / sigma
    if a + b > 0:  # Φ(b) - Φ(a) = Q(a) - Q(b), Q(v) = erfc(v / √2) / 2
        return math.log(0.5 * (math.erfc(a / math.sqrt(2)) - math.erfc(b / math.sqrt(2))))
    return math.log(0.5 * (math.erfc(-b / math.sqrt(2)) - math.erfc(-a / math.sqrt(2))))


def test_log_prob_matches_float64_reference():
    gen = torch.Generator().manual_seed(0)
    y = (torch.randint(0, 256, (400,), generator=gen).float() / 127.5) - 1
    y[:3] = torch.tensor([-1.0, 1.0, 0.0])
    mean = (torch.rand(400, generator=gen) * 2 - 1) * 0.5 + y * 0.5
    sigma = torch.rand(400, generator=gen) * 0.5 + 0.02
    ours = discretised_gaussian_log_prob(y, mean, sigma)
    ref = torch.tensor(
        [reference_log_prob(*v) for v in zip(y.tolist(), mean.tolist(), sigma.tolist())],
        dtype=torch.float64,
    )
    assert torch.allclose(ours.double(), ref, rtol=1e-4, atol=1e-4)


def test_log_prob_is_finite_with_finite_gradients_in_the_tails():
    y = torch.tensor([0.0, 0.0, -1.0, 1.0, 0.5])
    mean = torch.tensor([0.0, 0.9, -1.0, -1.0, 0.5])
    sigma = torch.tensor([1e-6, 1e-3, 1e-6, 1e-3, 1e-7], requires_grad=True)
    log_prob = discretised_gaussian_log_prob(y, mean, sigma)
    log_prob.sum().backward()
    assert bool(torch.isfinite(log_prob).all()) and bool(torch.isfinite(sigma.grad).all())
    assert abs(float(log_prob[0].detach())) < 1e-6  # μ = y, tiny σ: all mass in the bin


def test_nll_gives_no_gradient_to_the_mean_head():
    mean_head = torch.nn.Linear(4, 3)
    sigma_head = torch.nn.Linear(4, 3)
    features = torch.randn(8, 4)
    y = torch.rand(8, 3) * 2 - 1
    variance_nll(y, mean_head(features), torch.sigmoid(sigma_head(features))).backward()
    assert mean_head.weight.grad is None and mean_head.bias.grad is None
    assert sigma_head.weight.grad is not None and float(sigma_head.weight.grad.abs().sum()) > 0


def test_best_sigma_grows_with_the_error():
    sigmas = torch.linspace(0.002, 1.0, 2000)
    best = []
    for error in [0.01, 0.05, 0.2]:
        nll = -discretised_gaussian_log_prob(torch.zeros(()), torch.tensor(error), sigmas)
        best.append(float(sigmas[nll.argmin()]))
    assert best[0] < best[1] < best[2]


def test_adversarial_losses_and_r1():
    critic = lambda image, mask: (image * (1 + mask)).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.ones(2, 3, 4, 4), -torch.ones(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    assert generator_loss(critic, fake, mask) > 40  # D(fake) = -48: softplus(48)
    assert discriminator_loss(critic, real, fake, mask) < 1e-6
    # ∇_x D = 1 everywhere (48 entries): γ/2 · 48
    assert torch.isclose(r1_penalty(critic, real, mask, gamma=10.0), torch.tensor(240.0))
