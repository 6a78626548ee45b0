"""The masker: plain values, encodings, multi-line values, chunked streams, properties."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from treadle.secrets.masking import MASK, MIN_DERIVED, Masker, needles_for

SECRET = "s3cr3t-Pa55/word+=?&"


def test_plain_value_is_replaced() -> None:
    masker = Masker([SECRET])
    assert masker.mask(f"token={SECRET}; again {SECRET}") == "token=***; again ***"


def test_empty_secret_masks_nothing() -> None:
    masker = Masker([""])
    assert not masker
    assert masker.mask("anything at all") == "anything at all"
    stream = masker.stream()
    assert stream.feed("abc") + stream.feed("") + stream.flush() == "abc"


def test_url_encoded_forms() -> None:
    masker = Masker([SECRET])
    for form in (quote(SECRET), quote(SECRET, safe=""), quote_plus(SECRET)):
        assert form != SECRET
        assert masker.mask(f"https://x/?q={form}&b=1") == "https://x/?q=***&b=1"


def test_json_escaped_form() -> None:
    secret = 'pa"ss\\word\n2'
    text = json.dumps({"password": secret})
    assert secret not in text
    assert masker_output_free(Masker([secret]).mask(text), secret)
    assert Masker([secret]).mask(text) == '{"password": "***"}'


def masker_output_free(text: str, secret: str) -> bool:
    return all(needle not in text for needle in needles_for(secret))


def test_base64_of_the_value_alone_and_inside_longer_text() -> None:
    masker = Masker([SECRET])
    alone = base64.b64encode(SECRET.encode()).decode()
    assert SECRET not in masker.mask(alone)
    assert masker.mask(alone).startswith(MASK)
    for prefix in ("", "a", "ab", "abc"):
        encoded = base64.b64encode(f"{prefix}user:{SECRET}:tail".encode()).decode()
        masked = masker.mask(encoded)
        assert MASK in masked, prefix
        # What is left cannot be decoded back into the secret.
        for piece in masked.split(MASK):
            padded = piece + "=" * (-len(piece) % 4)
            try:
                decoded = base64.b64decode(padded)
            except ValueError:
                continue
            assert SECRET.encode() not in decoded


def test_each_line_of_a_multiline_secret() -> None:
    key = "-----BEGIN KEY-----\nMIIBOgIBAAJBAK\nx\n-----END KEY-----"
    masker = Masker([key])
    assert masker.mask(f"got {key} done") == "got *** done"
    # One line printed alone is masked; a line shorter than MIN_DERIVED is not (it would
    # blank out unrelated text).
    assert masker.mask("line MIIBOgIBAAJBAK seen") == "line *** seen"
    assert masker.mask("x marks") == "x marks"
    assert len("x") < MIN_DERIVED


def test_overlapping_secrets_are_masked_as_one_run() -> None:
    masker = Masker(["abcdef", "defghi"])
    assert masker.mask("xxabcdefghiyy") == "xx***yy"


def test_short_secret_is_still_masked_itself() -> None:
    assert Masker(["ab"]).mask("cabbage") == "c***bage"


def test_mask_value_walks_json() -> None:
    masker = Masker([SECRET])
    value = {"out": [SECRET, 3, None, {"k": f"x{SECRET}"}], SECRET: True}
    assert masker.mask_value(value) == {"out": ["***", 3, None, {"k": "x***"}], "***": True}


def test_stream_masks_a_secret_split_across_chunks() -> None:
    stream = Masker([SECRET]).stream()
    first = stream.feed("hello " + SECRET[:5])
    # The start of the secret is held back; the harmless prefix goes out at once.
    assert first == "hello "
    second = stream.feed(SECRET[5:] + " world\n")
    assert first + second + stream.flush() == "hello *** world\n"


def test_stream_does_not_hold_back_ordinary_text() -> None:
    stream = Masker([SECRET]).stream()
    assert stream.feed("line one\n") == "line one\n"
    assert stream.feed("line two\n") == "line two\n"
    assert stream.flush() == ""


def test_stream_flush_releases_a_partial_match() -> None:
    stream = Masker([SECRET]).stream()
    assert stream.feed("end " + SECRET[:3]) == "end "
    assert stream.flush() == SECRET[:3]


# -- properties --------------------------------------------------------------------------------
# '*' is left out of the alphabets: a secret made of stars would meet the mask text itself.
_TEXT = st.text(st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), max_size=40)
_SECRET = st.text(
    st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=1, max_size=30
)


def _stable_base64(prefix: bytes, secret: bytes, suffix: bytes) -> str:
    """The characters of base64(prefix+secret+suffix) that only the secret's bits decide."""
    encoded = base64.b64encode(prefix + secret + suffix).decode()
    start_bits, end_bits = 8 * len(prefix), 8 * (len(prefix) + len(secret))
    return encoded[-(-start_bits // 6) : end_bits // 6]


@settings(max_examples=300, deadline=None)
@given(secret=_SECRET, before=_TEXT, after=_TEXT)
def test_masked_text_never_holds_the_secret(secret: str, before: str, after: str) -> None:
    masked = Masker([secret]).mask(before + secret + after)
    assert secret not in masked
    assert MASK in masked


@settings(max_examples=300, deadline=None)
@given(secret=_SECRET, before=_TEXT, after=_TEXT)
def test_masked_encodings_never_hold_the_secret(secret: str, before: str, after: str) -> None:
    masker = Masker([secret])
    raw = secret.encode()
    embedded = base64.b64encode(before.encode() + raw + after.encode()).decode()
    stable = _stable_base64(before.encode(), raw, after.encode())
    masked = masker.mask(f"b64: {embedded}")
    if len(stable) >= MIN_DERIVED:
        assert stable not in masked
    for form in (quote(secret), quote(secret, safe=""), quote_plus(secret)):
        assert form not in masker.mask(before + form + after) or len(form) < MIN_DERIVED


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(_SECRET, min_size=1, max_size=3),
    pieces=st.lists(_TEXT, min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_stream_output_equals_whole_text_masking(
    secrets: list[str], pieces: list[str], cuts: list[int]
) -> None:
    masker = Masker(secrets)
    text = "".join(p + secrets[i % len(secrets)] for i, p in enumerate(pieces))
    bounds = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    stream = masker.stream()
    out = "".join(stream.feed(chunk) for chunk in chunks) + stream.flush()
    for secret in secrets:
        assert secret not in out
    assert out == masker.mask(text)


def test_capped_output_cut_inside_a_secret_hides_the_dangling_start() -> None:
    from treadle.runtime.base import cap_text

    text = "x" * 90 + SECRET + "tail"
    capped = cap_text(text, 95)  # cuts five characters into the secret
    assert SECRET[:5] in capped
    masked = Masker([SECRET]).mask_value({"stdout": capped})["stdout"]
    assert SECRET[:5] not in masked
    assert masked.startswith("x" * 90 + "***\n... [truncated")
    # Output without a cut keeps a harmless ending as it is.
    assert Masker([SECRET]).mask_value("ends with " + SECRET[:3]) == "ends with " + SECRET[:3]
