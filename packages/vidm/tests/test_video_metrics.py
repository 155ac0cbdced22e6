"""Video metrics: sprite centroids and trajectory errors, the FD proxy's features and sanity."""

import pytest
import torch

from diffrepro.core.metrics import TinyFeatureExtractor
from diffrepro.vidm.emoji_sprites import EmojiSprites, EmojiSpritesConfig
from diffrepro.vidm.video_metrics import (
    sprite_centroids,
    trajectory_error,
    video_fd_proxy,
    video_features,
)


def square_video(path, size=12, side=3):
    """A white square moving along ``path`` (list of top-left (y, x)) over a black frame."""
    video = -torch.ones(1, len(path), 3, size, size)
    for k, (y, x) in enumerate(path):
        video[0, k, :, y : y + side, x : x + side] = 1
    return video


def test_centroids_and_trajectory_errors_of_a_known_square():
    video = square_video([(2, 2), (3, 4), (4, 6)])
    centroids = sprite_centroids(video)[0]
    torch.testing.assert_close(centroids, torch.tensor([[3.0, 3.0], [4.0, 5.0], [5.0, 7.0]]))
    shifted = square_video([(2, 2), (3, 5), (4, 7)])  # frames 1, 2 one pixel to the right
    assert trajectory_error(video, video) == {"position": 0.0, "velocity": 0.0}
    errors = trajectory_error(shifted, video)
    assert errors["position"] == pytest.approx(1.0) and errors["velocity"] == pytest.approx(0.5)
    blank = -torch.ones(1, 2, 3, 12, 12)  # no foreground: the frame centre
    assert sprite_centroids(blank)[0].tolist() == [[5.5, 5.5], [5.5, 5.5]]


def test_video_features_layout_and_fd_proxy_sanity():
    data = EmojiSprites(EmojiSpritesConfig(size=16, frames=4, num_clips=24, sprite_size=10))
    videos = torch.stack([data[i]["frames"] for i in range(24)])
    net = TinyFeatureExtractor(dim=8, seed=0)
    feats = video_features(videos, net)
    assert feats.shape == (24, 2 * 8 + 3)
    change = (videos[:, 1:] - videos[:, :-1]).abs().mean(dim=(2, 3, 4))
    torch.testing.assert_close(feats[:, -3:], change.double())
    per_frame = net(videos[3]).double()
    torch.testing.assert_close(feats[3, :8], per_frame.mean(0))
    torch.testing.assert_close(feats[3, 8:16], per_frame.diff(dim=0).abs().mean(0))
    assert video_fd_proxy(videos, videos, net) == pytest.approx(0.0, abs=1e-6)
    a, b = videos[:12], videos[12:]
    assert video_fd_proxy(a, b, net) == pytest.approx(video_fd_proxy(b, a, net), rel=1e-6)
    frozen = videos[:, :1].expand(-1, 4, -1, -1, -1)
    assert video_fd_proxy(frozen[12:], a, net) > 2 * video_fd_proxy(b, a, net)
    with pytest.raises(ValueError, match="videos"):
        video_features(videos[:, :1], net)
