"""Where things live. Generated artefacts go under ``artifacts/<profile>/`` (not committed);
figures and tables under ``figures/<profile>/``; shipped data (paper tables) under ``data/``."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
SHARED = Path(os.environ.get("VGPS_SHARED", REPO.parent / "shared"))
BRIDGE_DEBUG = SHARED / "external" / "octo-debug-bridge" / "bridge_dataset" / "1.0.0"
TEST_DATA = REPO / "tests" / "data"


def artifacts_dir(profile: str, *parts: str) -> Path:
    """``artifacts/<profile>/<parts...>`` (created). Override the root with ``$VGPS_ARTIFACTS``."""
    p = _artifacts_root().joinpath(profile, *parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _artifacts_root() -> Path:
    return Path(os.environ.get("VGPS_ARTIFACTS", REPO / "artifacts"))


def cache_dir(*parts: str) -> Path:
    """``artifacts/_cache/<parts...>`` (created): caches shared by all profiles, keyed by what
    they were computed from (e.g. per-dataset statistics by the data fingerprint)."""
    p = _artifacts_root().joinpath("_cache", *parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def figures_dir(profile: str) -> Path:
    """``figures/<profile>/`` (created). Override the root with ``$VGPS_FIGURES``."""
    root = Path(os.environ.get("VGPS_FIGURES", REPO / "figures"))
    p = root / profile
    p.mkdir(parents=True, exist_ok=True)
    return p
