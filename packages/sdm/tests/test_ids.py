import torch

from diffrepro.sdm.ids import fit_linear_svm, inception_discriminative_scores, svm_decision


def test_separable_sets_give_zero_scores():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(200, 8, generator=gen) + 5
    fake = torch.randn(200, 8, generator=gen) - 5
    assert inception_discriminative_scores(real, fake) == (0.0, 0.0)


def test_identical_sets_give_closed_form_scores():
    real = torch.randn(300, 6, generator=torch.Generator().manual_seed(1))
    p_ids, u_ids = inception_discriminative_scores(real, real.clone())
    # the optimum is w = 0: every real is misclassified, no fake beats its (equal) real
    assert u_ids == 0.5 and p_ids == 0.0


def test_same_distribution_gives_about_one_half():
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(2000, 4, generator=gen), torch.randn(2000, 4, generator=gen)
    p_ids, u_ids = inception_discriminative_scores(real, fake)
    assert abs(p_ids - 0.5) < 0.05 and abs(u_ids - 0.5) < 0.05


def test_shuffled_pairing_changes_p_ids_only():
    gen = torch.Generator().manual_seed(3)
    real = torch.randn(400, 4, generator=gen)
    fake = real + 0.3 * torch.randn(400, 4, generator=gen) + 0.1
    shuffled = fake[torch.randperm(400, generator=gen)]
    p1, u1 = inception_discriminative_scores(real, fake)
    p2, u2 = inception_discriminative_scores(real, shuffled)
    assert abs(u1 - u2) < 1e-12 and abs(p1 - p2) > 0.05


def test_svm_solves_the_squared_hinge_problem():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(100, 3, generator=gen).double()
    labels = (x[:, 0] + 0.5 * torch.randn(100, generator=gen).double() > 0).double()
    w = fit_linear_svm(x, labels).requires_grad_(True)
    y = labels * 2 - 1
    objective = 0.5 * w @ w + (1 - y * svm_decision(w, x)).clamp(min=0).square().sum()
    (grad,) = torch.autograd.grad(objective, w)
    assert float(grad.norm()) < 1e-6
