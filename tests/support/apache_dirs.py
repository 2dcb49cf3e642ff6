"""Directories Apache's children can reach.

As root, Apache serves as www-data, and pytest's own temporary folders are 0700
(/tmp/pytest-of-root and every numbered folder in it): www-data could neither read the
switch's RewriteMap (mod_rewrite then falls back to the map's default port, which the switch
has just stopped: failed requests) nor the releases' static files (skew protection: 404s).
Loosening /tmp/pytest-of-root would not hold: each new pytest session (another run on the
machine) takes the bits back. So the folders Apache reads live in /tmp, traversable by all.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def apache_reachable(prefix: str) -> Iterator[Path]:
    """A fresh folder others may traverse (0711: not list), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
