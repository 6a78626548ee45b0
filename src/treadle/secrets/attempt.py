"""The secrets of one attempt: resolve references in its spec, and mask what it reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from treadle.errors import ServiceUnavailable, TreadleError
from treadle.runtime.base import LogSink, TaskFailed
from treadle.secrets.masking import Masker, StreamMasker
from treadle.secrets.refs import NONCE_FIELD, DeferredSecrets, referenced, substitute
from treadle.secrets.vault import Vault, require
from treadle.store.records import AttemptOutcome
from treadle.store.secrets_base import SecretStore

#: Reads secrets by name; names that are not set are left out of the answer.
SecretSource = Callable[[Sequence[str]], Awaitable[dict[str, str]]]


def store_source(store: SecretStore, vault: Vault | None) -> SecretSource:
    """Secrets read from ``store`` and decrypted with ``vault``."""

    async def read(names: Sequence[str]) -> dict[str, str]:
        if not names:
            return {}
        rows = await store.get_secrets(names)
        if rows:
            unlocked = require(vault)
            return {name: unlocked.decrypt(name, row.ciphertext) for name, row in rows.items()}
        return {}

    return read


class AttemptSecrets:
    """Resolves ``{{ secrets.NAME }}`` markers for one attempt and masks their values."""

    def __init__(self, source: SecretSource | None, nonce: str | None) -> None:
        self.source = source
        self.nonce = nonce
        self.values: dict[str, str] = {}
        self.masker = Masker()
        self._streams: dict[str, StreamMasker] = {}

    def deferred(self) -> DeferredSecrets:
        """The ``secrets`` object for templates the worker renders itself (post steps)."""
        deferred = DeferredSecrets(self.nonce)
        self.nonce = deferred.nonce
        return deferred

    async def resolve(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``spec`` with every secret marker replaced by its value (TaskFailed if unknown)."""
        out = {k: v for k, v in spec.items() if k != NONCE_FIELD}
        if self.nonce is None:
            return out
        names = referenced(out, self.nonce) - set(self.values)
        if names:
            await self._fetch(sorted(names))

        def mangled(where: str) -> None:
            raise TaskFailed(
                f"a secret in `{where}` went through a template filter; secrets can only be "
                "inserted as they are (transform them inside the task)",
                retryable=False,
            )

        resolved: dict[str, Any] = substitute(out, self.nonce, self.values, mangled)
        return resolved

    async def _fetch(self, names: list[str]) -> None:
        if self.source is None:
            raise TaskFailed(
                f"secret {names[0]!r} is not available: this worker has no secret store",
                retryable=False,
            )
        try:
            found = await self.source(names)
        except ServiceUnavailable as exc:
            raise TaskFailed(f"cannot read secrets: {exc.message}") from exc
        except TreadleError as exc:
            raise TaskFailed(exc.message, retryable=False) from exc
        self.values.update(found)
        self.masker.add(found.values())
        missing = [n for n in names if n not in found]
        if missing:
            raise TaskFailed(
                f"secret {missing[0]!r} is not set (treadle secret set {missing[0]})",
                retryable=False,
                error_type="SecretNotFound",
            )

    def sink(self, log: LogSink) -> LogSink:
        """``log`` behind a per-stream masker; call :meth:`flush` when the attempt ends."""

        def masked(stream: str, text: str) -> None:
            masker = self._streams.get(stream)
            if masker is None:
                masker = self._streams[stream] = self.masker.stream()
            safe = masker.feed(text)
            if safe:
                log(stream, safe)

        self._log = log
        return masked

    def flush(self) -> None:
        for stream, masker in self._streams.items():
            rest = masker.flush()
            if rest:
                self._log(stream, rest)
        self._streams.clear()

    def mask_outcome(self, outcome: AttemptOutcome) -> AttemptOutcome:
        if not self.masker:
            return outcome
        return dataclasses.replace(
            outcome,
            output=self.masker.mask_value(outcome.output),
            error=self.masker.mask(outcome.error) if outcome.error else outcome.error,
        )
