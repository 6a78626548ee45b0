"""Secret references: markers at render time, substitution and masking in the worker."""

from __future__ import annotations

from typing import Any

import pytest

from treadle.errors import TemplateError
from treadle.model.templating import render_task_spec
from treadle.runtime.base import TaskFailed
from treadle.secrets.attempt import AttemptSecrets
from treadle.secrets.refs import NONCE_FIELD, DeferredSecrets, stamp
from treadle.store.records import AttemptOutcome

VALUE = "tok-5ecret/value"


def _render(spec: dict[str, Any], inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    context = {"secrets": DeferredSecrets(), "inputs": inputs or {}}
    return stamp(render_task_spec(spec, context), context)


async def _source(names: Any) -> dict[str, str]:
    return {n: VALUE for n in names if n == "TOKEN"}


async def test_rendered_spec_keeps_a_reference_and_the_worker_fills_it_in() -> None:
    rendered = _render(
        {
            "kind": "shell",
            "command": ["curl", "-H", "Authorization: Bearer {{ secrets.TOKEN }}"],
            "env": {"T": "{{ secrets['TOKEN'] }}"},
        }
    )
    assert VALUE not in str(rendered)
    assert NONCE_FIELD in rendered
    resolved = await AttemptSecrets(_source, rendered[NONCE_FIELD]).resolve(rendered)
    assert resolved["command"][2] == f"Authorization: Bearer {VALUE}"
    assert resolved["env"] == {"T": VALUE}
    assert NONCE_FIELD not in resolved


def test_spec_without_secrets_is_not_stamped() -> None:
    assert NONCE_FIELD not in _render(
        {"kind": "shell", "command": ["echo", "{{ inputs.a }}"]}, {"a": 1}
    )


async def test_data_cannot_forge_a_reference() -> None:
    # An input shaped like a marker of some other pass is only text.
    forged = "[[treadle-secret:" + "0" * 32 + ":TOKEN]]"
    rendered = _render(
        {"kind": "shell", "command": ["echo", "{{ inputs.a }}", "{{ secrets.TOKEN }}"]},
        {"a": forged},
    )
    resolved = await AttemptSecrets(_source, rendered[NONCE_FIELD]).resolve(rendered)
    assert resolved["command"] == ["echo", forged, VALUE]


async def test_unknown_secret_fails_naming_it_not_the_value() -> None:
    rendered = _render({"kind": "shell", "command": ["echo", "{{ secrets.MISSING }}"]})
    with pytest.raises(TaskFailed, match="secret 'MISSING' is not set") as caught:
        await AttemptSecrets(_source, rendered[NONCE_FIELD]).resolve(rendered)
    assert not caught.value.retryable


async def test_a_filtered_secret_fails_instead_of_running_with_a_wrong_value() -> None:
    rendered = _render({"kind": "shell", "command": ["echo", "{{ secrets.TOKEN | upper }}"]})
    with pytest.raises(TaskFailed, match=r"`command\[1\]` went through a template filter"):
        await AttemptSecrets(_source, rendered[NONCE_FIELD]).resolve(rendered)


def test_bad_secret_name_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="bad secret name"):
        _render({"kind": "shell", "command": ["echo", "{{ secrets['a b'] }}"]})


async def test_worker_without_a_store_fails_clearly() -> None:
    rendered = _render({"kind": "log", "message": "{{ secrets.TOKEN }}"})
    with pytest.raises(TaskFailed, match="no secret store"):
        await AttemptSecrets(None, rendered[NONCE_FIELD]).resolve(rendered)


async def test_logs_output_and_error_are_masked_even_split_across_chunks() -> None:
    rendered = _render({"kind": "log", "message": "{{ secrets.TOKEN }}"})
    secrets = AttemptSecrets(_source, rendered[NONCE_FIELD])
    await secrets.resolve(rendered)
    seen: list[tuple[str, str]] = []
    sink = secrets.sink(lambda stream, text: seen.append((stream, text)))
    sink("stdout", "key=" + VALUE[:6])
    sink("stderr", "other stream\n")
    sink("stdout", VALUE[6:] + "\n")
    secrets.flush()
    assert "".join(t for s, t in seen if s == "stdout") == "key=***\n"
    assert ("stderr", "other stream\n") in seen
    outcome = secrets.mask_outcome(
        AttemptOutcome("a", "t", "failed", "failed", {"stdout": VALUE}, f"bad {VALUE}")
    )
    assert outcome.output == {"stdout": "***"}
    assert outcome.error == "bad ***"
