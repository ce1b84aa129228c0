"""Helpers for the browser tests: Chromium's launch flags, viewports, contexts and screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from spaces_harness import REPO, Platform

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SHOTS = REPO / "artifacts" / "screenshots"
DESKTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}
GALLERY_EXAMPLES = ("sentiment", "data-explorer")


def new_context(browser: Any, platform: Platform, viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
    context = browser.new_context(viewport=viewport, base_url=platform.url, **options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=platform.url)
    context.set_default_timeout(30_000)
    return context


def screenshot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def publish_screenshots(names: list[str]) -> None:
    """Copy fresh screenshots to docs/screenshots when asked (SPACES_UPDATE_SCREENSHOTS=1)."""
    if os.environ.get("SPACES_UPDATE_SCREENSHOTS") != "1":
        return
    docs = REPO / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(SHOTS / f"{name}.png", docs / f"{name}.png")
