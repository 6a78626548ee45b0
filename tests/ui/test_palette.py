"""Status colours are readable: WCAG AA contrast for text on its fill and on white."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from treadle.ui.palette import STATUS, contrast

CSS = (Path(__file__).resolve().parents[2] / "src/treadle/ui/static/treadle.css").read_text()


def test_contrast_formula_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("status", sorted(STATUS))
def test_badge_text_on_its_fill_meets_aa(status: str) -> None:
    swatch = STATUS[status]
    assert contrast(swatch.text, swatch.fill) >= 4.5
    # Accents draw borders and bars next to white: 3:1 for non-text graphics.
    assert contrast(swatch.accent, "#ffffff") >= 3.0


@pytest.mark.parametrize(
    ("fg", "bg"),
    [
        ("--text", "--bg"),
        ("--muted", "--bg"),
        ("--muted", "--card"),
        ("--link", "--card"),
        ("--link", "--bg"),
    ],
)
def test_page_colours_meet_aa(fg: str, bg: str) -> None:
    value = dict(re.findall(r"(--[a-z-]+):\s*(#[0-9a-f]{6})", CSS))
    assert contrast(value[fg], value[bg]) >= 4.5


def test_button_and_flash_colours_meet_aa() -> None:
    assert contrast("#ffffff", "#1d4ed8") >= 4.5  # primary button
    for text, fill in [("#14532d", "#dcfce7"), ("#78350f", "#fef3c7"), ("#7f1d1d", "#fee2e2")]:
        assert contrast(text, fill) >= 4.5
    assert contrast("#e2e8f0", "#0f172a") >= 4.5  # code and log blocks
    assert contrast("#fca5a5", "#0f172a") >= 4.5  # stderr lines
