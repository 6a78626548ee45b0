"""Webhooks: ``POST /api/v1/hooks/{name}`` starts a run, signed with an HMAC secret.

The sender signs the raw body with the hook's secret and sends
``X-Treadle-Signature: sha256=<hex of HMAC-SHA256(secret, body)>`` (the same scheme treadle
uses to sign its own callbacks). A hook is created through ``/api/v1/hooks`` (its secret is
stored, and shown once) or declared in a definition's ``hooks`` with ``secret_env`` naming an
environment variable of the API process, so secrets never sit in definitions.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from treadle.engine.schedules import StartRun
from treadle.errors import Conflict, DefinitionError, NotFound, ServiceUnavailable, TreadleError
from treadle.model.triggers import HOOK_NAME_PATTERN, HookSpec
from treadle.store.base import Store
from treadle.store.records import RunRecord
from treadle.store.trigger_records import HookRecord

SIGNATURE_HEADER = "X-Treadle-Signature"
HOOK_LABEL = "treadle.hook"
_NAME = re.compile(HOOK_NAME_PATTERN)


class SignatureError(TreadleError):
    """A hook call whose signature is missing or wrong."""

    code = "unauthorized"
    status = 401


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a ``sha256=<hex>`` signature."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body), header.strip().lower())


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hook_secret(hook: HookRecord, env: Mapping[str, str] | None = None) -> str:
    """The secret to check against; ServiceUnavailable when the server lacks it."""
    if hook.secret:
        return hook.secret
    value = (env if env is not None else os.environ).get(hook.secret_env or "")
    if not value:
        raise ServiceUnavailable(
            f"hook {hook.name!r} takes its secret from ${hook.secret_env}, which is not set "
            "on this server"
        )
    return value


def hook_inputs(hook: HookRecord, body: bytes) -> dict[str, Any]:
    """The run inputs a hook call gives: the JSON body, or ``{inputs_key: body}``."""
    payload: Any = {}
    if body.strip():
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DefinitionError(f"the hook body is not JSON: {exc}") from exc
    if hook.inputs_key:
        return {hook.inputs_key: payload}
    if not isinstance(payload, dict):
        raise DefinitionError(
            f"hook {hook.name!r} passes the body as the run inputs, so it must be a JSON object "
            f"(got {type(payload).__name__})"
        )
    return payload


async def trigger_hook(
    store: Store,
    start_run: StartRun,
    name: str,
    body: bytes,
    signature: str | None,
    env: Mapping[str, str] | None = None,
) -> RunRecord:
    """Check the signature of a hook call and start its run (NotFound for unknown hooks)."""
    hook = await store.get_hook(name)
    if not verify(hook_secret(hook, env), body, signature):
        raise SignatureError(
            f"bad or missing {SIGNATURE_HEADER} header: expected sha256=<hex HMAC-SHA256 of "
            "the raw body with the hook's secret>"
        )
    return await start_run(
        hook.definition_name,
        hook_inputs(hook, body),
        version=hook.definition_version,
        labels={HOOK_LABEL: hook.name},
        actor=f"hook:{hook.name}",
    )


async def create_hook(
    store: Store,
    name: str,
    definition: str,
    *,
    version: int | None = None,
    secret: str | None = None,
    inputs_key: str | None = None,
) -> HookRecord:
    """Store an API hook for an existing definition; the secret is generated when not given."""
    if not _NAME.match(name):
        raise DefinitionError(f"bad hook name {name!r}: letters, digits, _ . - (max 200)")
    if secret is not None and len(secret) < 16:
        raise DefinitionError("a hook secret needs at least 16 characters")
    await store.get_definition(definition, version)
    record = HookRecord(
        name=name,
        definition_name=definition,
        definition_version=version,
        secret=secret or new_secret(),
        inputs_key=inputs_key,
        created_at=await store.now(),
        source="api",
    )
    return await store.put_hook(record)


async def sync_definition_hooks(store: Store, definition: str, specs: Sequence[HookSpec]) -> None:
    """Make the hooks a definition declares exist, and drop the ones it no longer declares."""
    existing = {h.name: h for h in await store.list_hooks()}
    wanted = {spec.name for spec in specs}
    for spec in specs:
        other = existing.get(spec.name)
        if other is None:
            continue
        if other.source != "definition":
            raise Conflict(f"hook {spec.name!r} was created through the API; delete it first")
        if other.definition_name != definition:
            raise Conflict(
                f"hook {spec.name!r} already belongs to definition {other.definition_name!r}"
            )
    now = await store.now()
    for spec in specs:
        await store.put_hook(
            HookRecord(
                name=spec.name,
                definition_name=definition,
                secret_env=spec.secret_env,
                inputs_key=spec.inputs_key,
                created_at=now,
                source="definition",
            ),
            replace=True,
        )
    for hook in existing.values():
        mine = hook.source == "definition" and hook.definition_name == definition
        if mine and hook.name not in wanted:
            with contextlib.suppress(NotFound):  # removed meanwhile by a concurrent upload
                await store.delete_hook(hook.name)
