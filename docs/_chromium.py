"""Debian's chromium as the picture scripts run it: headless, offline, nothing of its own."""

from __future__ import annotations

BROWSER = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""What every picture needs; each script adds its own host-resolver rule."""
