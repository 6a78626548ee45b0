"""Replace secret values, and the forms a program is likely to print them in, with ``***``.

For each secret the masker looks for:

- the value itself;
- each line of a multi-line value (a program may print one line of a key file);
- its URL-encoded forms (``quote`` with and without ``/`` kept, ``quote_plus``) and its
  JSON-escaped form;
- its base64 encodings (standard and URL-safe alphabet). A secret inside a longer encoded string
  starts at one of three byte offsets modulo 3, and the base64 characters that depend only on
  the secret's bits differ for each offset; the masker keeps all three "stable" substrings.

Derived forms shorter than :data:`MIN_DERIVED` characters are not masked: a two-character
fragment would blank out unrelated text and protects nothing. The value itself is always masked
whatever its length; an empty value masks nothing.

Occurrences may overlap (of one needle or of several); every character covered by any
occurrence is replaced, and each maximal covered run becomes one ``***``.

Text that arrives in pieces (a process's output) goes through a :class:`StreamMasker`, which
holds back only the shortest tail that could still grow into a match, so a secret split across
two chunks is masked and ordinary output is not delayed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_DERIVED = 4
# How runtimes mark capped output (runtime.base.cap_text): text before it may end mid-secret.
_CUT = re.compile(r"\n\.\.\. \[truncated \d+ characters\]$")


def _base64_forms(value: bytes) -> set[str]:
    """Base64 substrings fixed by ``value`` alone, for each of the three byte offsets."""
    forms: set[str] = set()
    n = len(value)
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value).decode("ascii")
        start_bits, end_bits = 8 * offset, 8 * (offset + n)
        # Character i carries bits [6i, 6i+6); keep those lying wholly inside the value.
        first = -(-start_bits // 6)
        last = end_bits // 6
        stable = encoded[first:last]
        forms.add(stable)
        forms.add(stable.replace("+", "-").replace("/", "_"))
    return forms


def needles_for(secret: str) -> set[str]:
    """Every string that reveals ``secret`` and is masked on its behalf."""
    if not secret:
        return set()
    derived: set[str] = set()
    lines = secret.splitlines()
    if len(lines) > 1:
        derived.update(line.strip() for line in lines)
    derived.update({quote(secret), quote(secret, safe=""), quote_plus(secret)})
    derived.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    derived.add(json.dumps(secret)[1:-1])
    derived.update(_base64_forms(secret.encode("utf-8")))
    needles = {d for d in derived if len(d) >= MIN_DERIVED}
    needles.add(secret)
    return needles


class Masker:
    """Masks a fixed set of secret values in text and in JSON-like values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.needles: tuple[str, ...] = ()
        self.longest = 0
        self._by_first: dict[str, tuple[str, ...]] = {}
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these values too (streams already open pick them up)."""
        needles = set(self.needles)
        for secret in secrets:
            needles |= needles_for(secret)
        self.needles = tuple(sorted(needles, key=len, reverse=True))
        self.longest = len(self.needles[0]) if self.needles else 0
        by_first: dict[str, list[str]] = {}
        for needle in self.needles:
            by_first.setdefault(needle[0], []).append(needle)
        self._by_first = {c: tuple(ns) for c, ns in by_first.items()}

    def __bool__(self) -> bool:
        return bool(self.needles)

    def _covered(self, text: str) -> list[tuple[int, int]]:
        """Maximal runs of ``text`` covered by some occurrence of some needle, in order."""
        spans: list[tuple[int, int]] = []
        for needle in self.needles:
            at = text.find(needle)
            while at != -1:
                spans.append((at, at + len(needle)))
                at = text.find(needle, at + 1)
        if not spans:
            return spans
        spans.sort()
        merged = [spans[0]]
        for start, end in spans[1:]:
            last_start, last_end = merged[-1]
            if start < last_end:
                merged[-1] = (last_start, max(last_end, end))
            else:
                merged.append((start, end))
        return merged

    @staticmethod
    def _replace(text: str, runs: list[tuple[int, int]]) -> str:
        parts: list[str] = []
        at = 0
        for start, end in runs:
            parts.append(text[at:start])
            parts.append(MASK)
            at = end
        parts.append(text[at:])
        return "".join(parts)

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of a secret or its encodings replaced by ``***``."""
        if not self.needles or not text:
            return text
        runs = self._covered(text)
        return self._replace(text, runs) if runs else text

    def mask_capped(self, text: str) -> str:
        """:meth:`mask`, also hiding a secret's start left dangling where capped text was cut."""
        cut = _CUT.search(text) if self.needles else None
        if cut is None:
            return self.mask(text)
        kept, marker = text[: cut.start()], text[cut.start() :]
        dangling = self._held_tail(kept)
        if dangling < len(kept):
            return self.mask(kept[:dangling]) + MASK + marker
        return self.mask(kept) + marker

    def mask_value(self, value: Any) -> Any:
        """Mask every string (keys too) inside a JSON-like value."""
        if not self.needles:
            return value
        if isinstance(value, str):
            return self.mask_capped(value)
        if isinstance(value, dict):
            return {self.mask_value(k): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(v) for v in value]
        return value

    def stream(self) -> StreamMasker:
        """A masker for one stream of text arriving in chunks."""
        return StreamMasker(self)

    def _held_tail(self, text: str) -> int:
        """Where the longest suffix of ``text`` that is a proper prefix of a needle starts."""
        start = max(0, len(text) - self.longest + 1)
        for at in range(start, len(text)):
            candidates = self._by_first.get(text[at])
            if not candidates:
                continue
            size = len(text) - at
            for needle in candidates:
                if len(needle) > size and needle.startswith(text[at:]):
                    return at
        return len(text)


class StreamMasker:
    """Masks a stream fed in chunks; what it returns is final and safe to store.

    It keeps back the shortest tail of the text seen so far that could be the start of a
    secret (at most the longest needle less one character), so a value split across chunks is
    still masked. :meth:`flush` releases the tail when the stream ends.
    """

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self._pending = ""

    def feed(self, chunk: str) -> str:
        if not self.masker.needles:
            return chunk
        text = self._pending + chunk
        cut = self.masker._held_tail(text)
        runs = self.masker._covered(text)
        # A complete match running across the cut is held back whole.
        for start, end in runs:
            if start < cut < end:
                cut = start
                break
        self._pending = text[cut:]
        return self.masker._replace(text[:cut], [r for r in runs if r[1] <= cut])

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return self.masker.mask(text)
