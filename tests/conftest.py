"""Shared test fixtures.

Real data lives in ``../shared`` beside the repository. Tests that need it fail (not skip)
when the ``CI`` environment variable is set and the file is missing, so CI can never go green
by silently skipping the real-data checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FASHION_DIR = SHARED / "data" / "fashion-product-224"
MOBILENET_CHECKPOINT = SHARED / "weights" / "mobilenet_v2_imagenet_from_coral.pth"


def require_shared(path: Path) -> Path:
    """Return ``path`` if it exists; fail under CI, skip elsewhere."""
    if path.exists():
        return path
    message = f"shared test data missing: {path} (expected ../shared beside the repository)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The real tagged catalogue ``../shared/data/fashion-product-224``."""
    require_shared(FASHION_DIR / "tags.csv")
    return FASHION_DIR


@pytest.fixture(scope="session")
def mobilenet_checkpoint() -> Path:
    """The real ImageNet mobilenet_v2 state dict (needs mean=std=0.5 preprocessing)."""
    return require_shared(MOBILENET_CHECKPOINT)
