"""P-IDS and U-IDS (CoModGAN's Inception Discriminative Scores, as evaluated by MAT; spec §5).

A linear SVM separates real (label 1) from fake (label 0) features. U-IDS is its training
misclassification rate; P-IDS is the fraction of pairs whose fake scores above its real
(pairing by order). The SVM is LinearSVC(dual=False)'s problem, solved here in float64:
min_w ½‖w‖² + C Σ max(0, 1 - y_i w·[x_i, 1])² (intercept regularised, as liblinear does), by
Newton's method with a backtracking line search (the objective is convex and piecewise quadratic).
"""

from __future__ import annotations

import torch


def fit_linear_svm(features: torch.Tensor, labels: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Weights (d + 1, last = intercept) of the L2-regularised squared-hinge linear SVM."""
    x = torch.cat([features.double(), features.new_ones(len(features), 1).double()], 1)
    y = labels.double() * 2 - 1
    w = torch.zeros(x.shape[1], dtype=torch.float64)

    def objective(w: torch.Tensor) -> torch.Tensor:
        return 0.5 * w @ w + c * (1 - y * (x @ w)).clamp(min=0).square().sum()

    for _ in range(100):
        active = (1 - y * (x @ w)) > 0
        xa = x[active]
        grad = w + 2 * c * xa.T @ (xa @ w - y[active])
        if grad.norm() < 1e-10 * (1 + w.norm()):
            break
        hessian = torch.eye(len(w), dtype=torch.float64) + 2 * c * xa.T @ xa
        step = torch.linalg.solve(hessian, grad)
        size, current = 1.0, objective(w)
        while objective(w - size * step) > current - 1e-4 * size * (grad @ step) and size > 1e-10:
            size /= 2
        w = w - size * step
    return w


def svm_decision(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Decision values w·x + b."""
    return features.double() @ weights[:-1] + weights[-1]


def inception_discriminative_scores(
    real: torch.Tensor, fake: torch.Tensor, c: float = 1.0
) -> tuple[float, float]:
    """(P-IDS, U-IDS) of paired feature sets of shape (N, d); pairs are matched by row."""
    if real.shape != fake.shape or real.ndim != 2:
        raise ValueError(
            f"need paired (N, d) feature sets, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    features = torch.cat([real, fake])
    labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
    weights = fit_linear_svm(features, labels, c)
    d_real, d_fake = svm_decision(weights, real), svm_decision(weights, fake)
    accuracy = torch.cat([d_real > 0, d_fake <= 0]).double().mean()
    p_ids = (d_fake > d_real).double().mean()
    return float(p_ids), float(1 - accuracy)
