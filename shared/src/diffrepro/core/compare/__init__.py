"""Side-by-side comparisons of the installed methods of one kind (``diffrepro compare``).

- :mod:`.contract`: the editing contract (:class:`EditMethod`, :class:`EditResult`), the
  ``diffrepro.editing`` entry-point group and :func:`count_unet_evals`
- :mod:`.baselines`: DDIM inversion + word swap and SDEdit + word swap, from core pieces
- :mod:`.tasks`: the default held-out emoji tasks and user task files
- :mod:`.metrics`: the per-edit measures; :mod:`.memory`: peak memory
- :mod:`.runner`: the cells, their cache and progress; :mod:`.report` / :mod:`.figure`: outputs
- :mod:`.editing` / :mod:`.cli`: ``diffrepro compare editing``

How a paper registers a method, and what the measures mean: ``docs/compare.md``.
"""

from diffrepro.core.compare.contract import (
    EDITING_GROUP,
    EditMethod,
    EditResult,
    count_unet_evals,
)

__all__ = ["EDITING_GROUP", "EditMethod", "EditResult", "count_unet_evals"]
