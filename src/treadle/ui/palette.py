"""Status colours shared by the stylesheet, the graph and the timeline.

Each status has an accent (borders, bars), a light fill and a dark text colour; text on its
fill meets WCAG AA (contrast of at least 4.5:1, checked in tests/ui/test_palette.py). Colour is
never the only signal: every status is also written out in words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Swatch:
    accent: str
    fill: str
    text: str


STATUS: dict[str, Swatch] = {
    "pending": Swatch("#6b7280", "#f3f4f6", "#374151"),
    "queued": Swatch("#4338ca", "#e0e7ff", "#3730a3"),
    "running": Swatch("#1d4ed8", "#dbeafe", "#1e3a8a"),
    "paused": Swatch("#b45309", "#fef3c7", "#78350f"),
    "completed": Swatch("#15803d", "#dcfce7", "#14532d"),
    "failed": Swatch("#b91c1c", "#fee2e2", "#7f1d1d"),
    "skipped": Swatch("#6b7280", "#f9fafb", "#4b5563"),
    "cancelled": Swatch("#57534e", "#e7e5e4", "#292524"),
    # workers
    "alive": Swatch("#15803d", "#dcfce7", "#14532d"),
    "lost": Swatch("#b91c1c", "#fee2e2", "#7f1d1d"),
    "stopped": Swatch("#6b7280", "#f3f4f6", "#374151"),
}
NEUTRAL = Swatch("#4b5563", "#ffffff", "#1f2937")


def swatch(status: str | None) -> Swatch:
    return STATUS.get(status or "", NEUTRAL)


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)


def luminance(colour: str) -> float:
    """Relative luminance of ``#rrggbb`` (WCAG 2 definition)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def stylesheet() -> str:
    """CSS custom properties and badge classes for every status (served as /static/status.css
    would be, but inlined into the page head so the palette has one source)."""
    lines = []
    for name, s in STATUS.items():
        lines.append(f".st-{name}{{--st-accent:{s.accent};--st-fill:{s.fill};--st-text:{s.text}}}")
    return "\n".join(lines)
