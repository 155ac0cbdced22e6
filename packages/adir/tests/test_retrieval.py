"""Retrieval: K-D tree = brute force, exactly K, never the query, index round trip."""

import numpy as np
import pytest
import torch

from diffrepro.adir.embedders import ThumbnailEmbedder
from diffrepro.adir.images import save_image
from diffrepro.adir.retrieval import RetrievalIndex, build_index, list_images


def random_index(n=200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return RetrievalIndex(
        rng.normal(size=(n, d)),
        tuple(f"/corpus/{i}.png" for i in range(n)),
        tuple(f"{i:064x}" for i in range(n)),
        "random",
    )


@pytest.mark.parametrize("k", [1, 7, 20])
def test_kdtree_agrees_with_brute_force_and_returns_exactly_k(k):
    index = random_index()
    queries = np.random.default_rng(1).normal(size=(5, 16))
    exclude = {3, 17, 42}
    tree = index.search(queries, k, method="kdtree", exclude=exclude)
    brute = index.search(queries, k, method="brute", exclude=exclude)
    assert tree.shape == (5, k)
    np.testing.assert_array_equal(tree, brute)
    assert not set(tree.ravel()) & exclude
    assert all(len(set(row)) == k for row in tree)


def test_the_query_itself_is_never_returned():
    index = random_index()
    for row in range(0, 200, 37):  # the query IS a corpus image: it would be its own neighbour
        found = index.search(index.embeddings[row], 5, exclude={row})
        assert row not in found[0]
        assert index.search(index.embeddings[row], 1)[0, 0] == row


def test_too_few_images_or_bad_method_is_a_clear_error():
    index = random_index(n=10)
    with pytest.raises(ValueError, match="cannot retrieve k=10"):
        index.search(np.zeros(16), 10, exclude={0})
    with pytest.raises(ValueError, match="search method"):
        index.search(np.zeros(16), 1, method="annoy")


def test_index_built_from_files_saves_loads_and_excludes_by_content(tmp_path):
    corpus = tmp_path / "corpus"
    gen = torch.Generator().manual_seed(0)
    for i in range(12):
        save_image(torch.rand(3, 24, 24, generator=gen) * 2 - 1, corpus / f"img{i:02d}.png")
    paths = list_images(corpus)
    index = build_index(paths, ThumbnailEmbedder(), image_size=16, batch_size=5)
    path = index.save(tmp_path / "index.npz")
    loaded = RetrievalIndex.load(path)
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    assert loaded.paths == index.paths and loaded.embedder == "thumbnail8"
    copy = tmp_path / "query.png"  # same content under another name: still excluded
    copy.write_bytes(paths[4].read_bytes())
    assert loaded.excluded([copy]) == {4}
    assert loaded.excluded([paths[2]]) == {2}


def test_thumbnail_embedder_is_robust_to_degradation():
    gen = torch.Generator().manual_seed(0)
    images = torch.nn.functional.interpolate(
        torch.rand(8, 3, 4, 4, generator=gen), 32, mode="bilinear"
    )
    blurred = torch.nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    noisy = blurred + 0.05 * torch.randn(images.shape, generator=gen)
    index = RetrievalIndex(
        ThumbnailEmbedder()(images * 2 - 1).numpy(),
        tuple(map(str, range(8))),
        tuple(map(str, range(8))),
        "thumb",
    )
    found = index.search(ThumbnailEmbedder()(noisy * 2 - 1).numpy(), 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(8))


def test_missing_folder_and_index_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder"):
        list_images(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="adir index"):
        RetrievalIndex.load(tmp_path / "index.npz")
