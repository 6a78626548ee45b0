"""open_broker(): schemes, URL options, and what an unreachable server looks like."""

from __future__ import annotations

import socket
import time

import pytest

from treadle.broker._common import Backoff, UrlOptions
from treadle.broker.factory import ACCEPTED, open_broker
from treadle.broker.memory import MemoryBroker
from treadle.broker.nats import NatsBroker, token
from treadle.broker.postgres import PostgresBroker
from treadle.broker.rabbitmq import RabbitMQBroker, amqp_name
from treadle.broker.redis import RedisBroker
from treadle.errors import ConfigError, ServiceUnavailable


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", MemoryBroker),
        ("postgresql://postgres@127.0.0.1/test", PostgresBroker),
        ("postgres://postgres@127.0.0.1/test", PostgresBroker),
        ("redis://127.0.0.1:6379/0", RedisBroker),
        ("amqp://guest:guest@127.0.0.1:5672/", RabbitMQBroker),
        ("amqps://guest:guest@127.0.0.1:5671/", RabbitMQBroker),
        ("nats://127.0.0.1:4222", NatsBroker),
    ],
)
def test_scheme_picks_the_implementation(url: str, kind: type) -> None:
    broker = open_broker(url)
    assert isinstance(broker, kind)
    assert broker.url == url


@pytest.mark.parametrize("url", ["kafka://127.0.0.1:9092", "127.0.0.1:6379", ""])
def test_unknown_scheme_names_the_accepted_ones(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_broker(url)
    for scheme in ACCEPTED:
        assert scheme in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?visibility_timeout=soon",
        "redis://127.0.0.1:6379/0?visibility_timeout=-1",
        "redis://127.0.0.1:6379/0?prefix=a:b",
        "postgresql://postgres@127.0.0.1/test?schema=x;drop",
        "nats://127.0.0.1:4222?prefix=a.b",
        "amqp://guest:guest@127.0.0.1:5672/?prefix=a%20b",
    ],
)
def test_bad_options_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        open_broker(url)


def test_own_options_never_reach_the_driver() -> None:
    opts = UrlOptions.parse(
        "postgresql://u@h/db?schema=s&sslmode=disable&poll_interval=0.5",
        frozenset({"schema", "poll_interval"}),
    )
    assert opts.driver_url == "postgresql://u@h/db?sslmode=disable"
    assert opts.options == {"schema": "s", "poll_interval": "0.5"}
    assert opts.number("poll_interval", 1.0) == 0.5


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(initial=0.1, cap=2.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert delays[0] <= 0.1 and max(delays[-4:]) > 0.9
    assert len({round(d, 6) for d in delays[-4:]}) > 1  # capped delays still differ (jitter)


def test_queue_name_escapes_are_injective() -> None:
    names = ["a.b", "a_2eb", "a*", "a>", "a b", "a:b", "_treadle.advance", "été"]
    assert len({token(n) for n in names}) == len(names)
    assert len({amqp_name(n) for n in names}) == len(names)
    for escaped in map(token, names):
        assert escaped.replace("_", "").replace("-", "").isalnum()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket closes


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://postgres@127.0.0.1:{port}/test",
        "redis://127.0.0.1:{port}/0",
        "amqp://guest:guest@127.0.0.1:{port}/",
        "nats://127.0.0.1:{port}",
    ],
)
async def test_unreachable_server_is_service_unavailable(template: str) -> None:
    broker = open_broker(template.format(port=closed_port()) + "?connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as info:
        await broker.connect()
    assert time.monotonic() - started < 10
    message = info.value.message
    assert "\n" not in message
    assert "unreachable" in message
    await broker.close()


async def test_passwords_stay_out_of_errors() -> None:
    broker = open_broker(f"amqp://guest:s3cret@127.0.0.1:{closed_port()}/?connect_timeout=1")
    with pytest.raises(ServiceUnavailable) as info:
        await broker.connect()
    assert "s3cret" not in info.value.message
