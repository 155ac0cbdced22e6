import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_and_private_cache(monkeypatch, tmp_path):
    """Tiny tests run fastest single-threaded; the demo's cache goes to a temporary folder."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield
    torch.set_num_threads(threads)
