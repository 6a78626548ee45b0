"""Pure pieces of waits, schedules, limits and hooks: no store, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from treadle.engine.hooks import hook_inputs
from treadle.engine.limits import SERIAL_LABEL, run_scopes
from treadle.engine.schedules import apply_catchup, due_ticks, next_fire, tick_run_id
from treadle.engine.waits import parse_instant, plan_wait, signal_output
from treadle.errors import DefinitionError, TemplateError
from treadle.model.parse import definition_from_document
from treadle.store.records import RunRecord, TaskRecord
from treadle.store.trigger_records import HookRecord, ScheduleRecord

NOW = datetime(2026, 3, 28, 12, 0, 0, tzinfo=UTC)


def task(**spec: Any) -> TaskRecord:
    return TaskRecord(
        id="t1",
        run_id="r1",
        name="w",
        seq=0,
        status="queued",
        spec={"name": "w", "kind": "wait", **spec},
        depends_on=[],
        queue="default",
        priority=0,
        created_at=NOW,
    )


def doc(**fields: Any) -> dict[str, Any]:
    return {"name": "d", "tasks": [{"name": "n", "kind": "noop"}], **fields}


# -- waits ---------------------------------------------------------------------------------
def test_plan_wait_for_a_duration_until_a_time_and_for_a_signal() -> None:
    timer = plan_wait(task(seconds=90), {"seconds": 90}, NOW)
    assert timer.wake_at == NOW + timedelta(seconds=90) and timer.on_wake == "complete"
    assert timer.output == {"until": (NOW + timedelta(seconds=90)).isoformat()}
    text = plan_wait(task(duration="2m"), {"duration": "2m"}, NOW)
    assert text.wake_at == NOW + timedelta(minutes=2)
    until = plan_wait(task(), {"until": "2026-03-28T14:00:00+02:00"}, NOW)
    assert until.wake_at == datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    signal = plan_wait(task(), {"signal": "approve"}, NOW)
    assert (signal.signal, signal.wake_at) == ("approve", None)
    timed = plan_wait(task(), {"signal": "approve", "timeout": 30}, NOW)
    assert timed.wake_at == NOW + timedelta(seconds=30) and timed.on_wake == "fail"
    short = plan_wait(task(), {"seconds": 60, "timeout": 5}, NOW)
    assert short.on_wake == "fail" and short.wake_at == NOW + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"until": "tomorrow"}, "not an ISO 8601 time"),
        ({"seconds": "soon"}, "not a duration"),
        ({"signal": "has space"}, "bad signal name"),
        ({}, "needs"),
    ],
)
def test_plan_wait_rejects_bad_values(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_wait(task(), spec, NOW)


def test_parse_instant_reads_z_and_naive_times_as_utc() -> None:
    assert parse_instant("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_instant("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)


def test_signal_output_is_always_an_object() -> None:
    assert signal_output({"a": 1}) == {"a": 1}
    assert signal_output(None) == {}
    assert signal_output([1]) == {"value": [1]}
    assert signal_output("yes") == {"value": "yes"}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"seconds": 1, "signal": "x"},
        {"until": "2026-01-01T00:00:00Z", "duration": "1m"},
        {"seconds": "forever"},
    ],
)
def test_wait_task_needs_exactly_one_valid_trigger(fields: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        definition_from_document({"name": "d", "tasks": [{"name": "w", "kind": "wait", **fields}]})


def test_wait_task_accepts_templates() -> None:
    model = definition_from_document(
        {"name": "d", "tasks": [{"name": "w", "kind": "wait", "seconds": "{{ inputs.s }}"}]}
    )
    assert model.to_document()["tasks"][0]["seconds"] == "{{ inputs.s }}"


# -- definition fields ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"schedule": {"cron": "every day"}}, "schedule.cron"),
        ({"schedule": {"cron": "* * * * *", "timezone": "Nowhere/City"}}, "schedule.timezone"),
        ({"schedule": {"cron": "* * * * *", "catchup": "some"}}, "schedule.catchup"),
        ({"concurrency": {"limit": 0}}, "concurrency.limit"),
        ({"hooks": [{"name": "h", "secret": "inline"}]}, "hooks.0"),
        ({"on_success": "ftp://x"}, "on_success"),
    ],
)
def test_bad_trigger_fields_name_the_field(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(DefinitionError) as info:
        definition_from_document(doc(**fields))
    assert where in info.value.message


def test_trigger_fields_round_trip() -> None:
    fields = {
        "concurrency": {"limit": 2, "key": "{{ inputs.customer }}"},
        "schedule": {"cron": "*/5 * * * *", "timezone": "Europe/Paris", "overlap": "queue"},
        "hooks": [{"name": "deploy", "secret_env": "DEPLOY_SECRET"}],
        "on_success": "http://127.0.0.1:9/ok",
        "on_failure": [{"url": "http://127.0.0.1:9/bad", "headers": {"X": "1"}}],
    }
    document = definition_from_document(doc(**fields)).to_document()
    assert document["schedule"]["overlap"] == "queue"
    assert document["on_success"] == {"url": "http://127.0.0.1:9/ok"}
    assert document["concurrency"] == fields["concurrency"]


# -- schedules -----------------------------------------------------------------------------
def test_next_fire_honours_the_time_zone_and_dst() -> None:
    # 02:30 does not exist in Paris on 2026-03-29 (clocks jump 02:00 -> 03:00).
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    first = next_fire("30 2 * * *", "Europe/Paris", before)
    assert first == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the next instant
    second = next_fire("30 2 * * *", "Europe/Paris", first)
    assert second == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert next_fire("30 2 * * *", "UTC", before) == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)
    assert next_fire("* * * * * *", "UTC", before) == before + timedelta(seconds=1)


def schedule(next_at: datetime, cron: str = "*/10 * * * *") -> ScheduleRecord:
    return ScheduleRecord("s", "d", cron, "UTC", NOW - timedelta(days=1), next_fire_at=next_at)


def test_due_ticks_lists_missed_ticks_and_the_next_one() -> None:
    ticks, following = due_ticks(schedule(NOW - timedelta(minutes=30)), NOW + timedelta(minutes=1))
    assert ticks == [NOW - timedelta(minutes=m) for m in (30, 20, 10, 0)]
    assert following == NOW + timedelta(minutes=10)
    none, later = due_ticks(schedule(NOW + timedelta(minutes=10)), NOW)
    assert none == [] and later == NOW + timedelta(minutes=10)


def test_catchup_policies() -> None:
    ticks = [NOW - timedelta(minutes=m) for m in (30, 20, 10)]
    assert apply_catchup(ticks, "all", 60, NOW) == ticks
    assert apply_catchup(ticks, "latest", 60, NOW) == [ticks[-1]]
    assert apply_catchup(ticks, "none", 60, NOW) == []
    assert apply_catchup(ticks, "none", 601, NOW) == [ticks[-1]]
    assert apply_catchup([], "all", 60, NOW) == []


def test_tick_run_ids_are_stable_per_tick() -> None:
    s = schedule(NOW)
    assert tick_run_id(s, NOW) == tick_run_id(s, NOW)
    assert tick_run_id(s, NOW) != tick_run_id(s, NOW + timedelta(seconds=1))


# -- limits --------------------------------------------------------------------------------
def run(definition: dict[str, Any], inputs: dict[str, Any], labels: dict[str, Any]) -> RunRecord:
    return RunRecord("r", "d", 1, definition, "pending", inputs, NOW, labels=labels)


def test_run_scopes() -> None:
    assert run_scopes(run({}, {}, {})) == []
    assert run_scopes(run({"concurrency": {"limit": 3}}, {}, {})) == [("definition:d", 3)]
    keyed = run({"concurrency": {"limit": 1, "key": "{{ inputs.c }}"}}, {"c": "acme"}, {})
    assert run_scopes(keyed) == [("definition:d:acme", 1)]
    serial = run({}, {}, {SERIAL_LABEL: "schedule:s"})
    assert run_scopes(serial) == [("serial:schedule:s", 1)]
    long = run({"concurrency": {"limit": 1, "key": "{{ inputs.c }}"}}, {"c": "x" * 1000}, {})
    assert len(run_scopes(long)[0][0]) <= 300
    with pytest.raises(TemplateError):
        run_scopes(run({"concurrency": {"limit": 1, "key": "{{ inputs.nope }}"}}, {}, {}))


# -- hooks ---------------------------------------------------------------------------------
def test_hook_inputs() -> None:
    plain = HookRecord("h", "d", NOW)
    assert hook_inputs(plain, b'{"a": 1}') == {"a": 1}
    assert hook_inputs(plain, b"") == {}
    keyed = HookRecord("h", "d", NOW, inputs_key="event")
    assert hook_inputs(keyed, b"[1, 2]") == {"event": [1, 2]}
    with pytest.raises(DefinitionError, match="JSON object"):
        hook_inputs(plain, b"[1]")
    with pytest.raises(DefinitionError, match="not JSON"):
        hook_inputs(plain, b"{oops")
