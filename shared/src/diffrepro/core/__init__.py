"""diffrepro.core: the shared core of the diffrepro reproductions.

Submodules are imported explicitly (``from diffrepro.core import schedules``); importing the
package itself is cheap and never imports triton.
"""

__version__ = "0.1.0"
