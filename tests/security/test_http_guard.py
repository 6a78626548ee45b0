"""HTTP tasks never reach link-local / cloud metadata addresses unless the config allows them.

The check is made on the address actually connected to: every numeric spelling, a redirect, a
DNS name and a DNS answer that changes between requests all end in the same refusal.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from treadle.runtime.base import AttemptContext, TaskFailed
from treadle.runtime.http import run_http
from treadle.runtime.http_guard import AddressPolicy, AddressRefused, checked_addresses
from treadle.testing import run_local

METADATA_SPELLINGS = [
    "169.254.169.254",
    "2852039166",  # decimal
    "0xa9fea9fe",  # hex
    "0xA9FEA9FE",
    "169.254.43518",  # short form
    "[::ffff:169.254.169.254]",  # IPv4-mapped IPv6
    "[::ffff:a9fe:a9fe]",
    "[0:0:0:0:0:ffff:a9fe:a9fe]",
    "[fd00:ec2::254]",  # AWS IMDS over IPv6
    "169.254.170.2",  # ECS task metadata
    "100.100.100.200",  # Alibaba metadata
]


class _Recorder(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self.server.hits.append((self.path, self.headers.get("Host")))  # type: ignore[attr-defined]
        if self.path.startswith("/redirect"):
            target = self.path.split("to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.hits  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _ctx(settings: dict[str, Any] | None = None) -> AttemptContext:
    return AttemptContext(
        run_id="r",
        task_id="t",
        task_name="fetch",
        attempt_id="a",
        attempt_number=1,
        log=lambda stream, text: None,
        settings=settings or {},
    )


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
async def test_metadata_addresses_are_refused_in_every_spelling(host: str) -> None:
    with pytest.raises(TaskFailed) as info:
        await run_http({"url": f"http://{host}/latest/meta-data/", "connect_timeout": 2}, _ctx())
    failed = info.value
    assert failed.error_type == "AddressRefused"
    assert not failed.retryable
    assert "refused to connect" in str(failed)
    assert "http_allow_networks" in str(failed)
    # the message names the address the spelling stands for
    assert any(a in str(failed) for a in ("169.254.", "fd00:ec2::254", "100.100.100.200"))


async def test_octal_spelling_is_refused_before_any_connection() -> None:
    # httpx reads four dotted parts as IPv4 and refuses the leading zeros outright; the C
    # resolver would have read them as octal 169.254.169.254.
    with pytest.raises(TaskFailed, match=r"0251\.0376\.0251\.0376") as info:
        await run_http({"url": "http://0251.0376.0251.0376/"}, _ctx())
    assert info.value.error_type == "InvalidURL"
    assert not info.value.retryable


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "::169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
    ],
)
def test_policy_refuses_link_local_and_embedded_forms(address: str) -> None:
    policy = AddressPolicy()
    assert policy.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "8.8.8.8"])
def test_loopback_and_private_are_allowed_by_default(address: str) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "0.0.0.0"])
def test_deny_private_refuses_them(address: str) -> None:
    policy = AddressPolicy.from_settings({"http_deny_private": True})
    assert "private" in (policy.refusal(ipaddress.ip_address(address)) or "")
    assert policy.refusal(ipaddress.ip_address("8.8.8.8")) is None


def test_allow_networks_lets_a_network_through() -> None:
    policy = AddressPolicy.from_settings({"http_allow_networks": "169.254.169.254/32"})
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:169.254.169.254")) is None
    assert policy.refusal(ipaddress.ip_address("169.254.0.1")) is not None


def test_one_refused_answer_refuses_the_whole_name() -> None:
    with pytest.raises(AddressRefused, match=r"rebind\.test \(169\.254\.169\.254\)"):
        checked_addresses("rebind.test", ["127.0.0.1", "169.254.169.254"], AddressPolicy())


async def test_a_local_server_is_reached(local_server: tuple[str, list[Any]]) -> None:
    url, hits = local_server
    output = await run_http({"url": f"{url}/ok"}, _ctx())
    assert output["status"] == 200
    assert output["json"] == {"ok": True}
    assert hits[-1][0] == "/ok"


async def test_deny_private_refuses_the_local_server(local_server: tuple[str, list[Any]]) -> None:
    url, hits = local_server
    with pytest.raises(TaskFailed, match=r"127\.0\.0\.1 is a private address"):
        await run_http({"url": f"{url}/ok"}, _ctx({"http_deny_private": True}))
    assert hits == []


async def test_localhost_resolves_and_is_checked(local_server: tuple[str, list[Any]]) -> None:
    url, hits = local_server
    port = url.rsplit(":", 1)[1]
    output = await run_http({"url": f"http://localhost:{port}/name"}, _ctx())
    assert output["status"] == 200
    with pytest.raises(TaskFailed, match=r"refused to connect to localhost \("):
        await run_http({"url": f"http://localhost:{port}/name"}, _ctx({"http_deny_private": True}))
    assert [h[0] for h in hits] == ["/name"]


async def test_a_redirect_to_metadata_is_refused(local_server: tuple[str, list[Any]]) -> None:
    url, hits = local_server
    spec = {
        "url": f"{url}/redirect?to=http://169.254.169.254/latest/meta-data/",
        "follow_redirects": True,
        "connect_timeout": 2,
    }
    with pytest.raises(TaskFailed) as info:
        await run_http(spec, _ctx())
    assert info.value.error_type == "AddressRefused"
    assert "169.254.169.254" in str(info.value)
    assert hits[0][0].startswith("/redirect")
    # a redirect in decimal spelling is refused just the same
    spec["url"] = f"{url}/redirect?to=http://2852039166/"
    with pytest.raises(TaskFailed, match=r"169\.254\.169\.254"):
        await run_http(spec, _ctx())


async def test_redirects_are_not_followed_unless_asked(local_server: tuple[str, list[Any]]) -> None:
    url, hits = local_server
    spec = {"url": f"{url}/redirect?to=http://169.254.169.254/", "accept": [302]}
    output = await run_http(spec, _ctx())
    assert output["status"] == 302
    assert len(hits) == 1


async def test_a_redirect_within_allowed_addresses_is_followed(
    local_server: tuple[str, list[Any]],
) -> None:
    url, hits = local_server
    spec = {"url": f"{url}/redirect?to={url}/landed", "follow_redirects": True}
    output = await run_http(spec, _ctx())
    assert output["status"] == 200
    assert [h[0] for h in hits][-1] == "/landed"


async def test_dns_rebinding_is_caught_at_connect(local_server: tuple[str, list[Any]]) -> None:
    """A name that answers a local address first and metadata next is refused the second time;
    the connection goes to the address that was checked (the local server sees the name)."""
    import httpx

    from treadle.runtime.http_guard import GuardedTransport

    url, hits = local_server
    port = int(url.rsplit(":", 1)[1])
    answers = [["127.0.0.1"], ["169.254.169.254"]]

    async def resolver(host: str, _port: int) -> list[str]:
        assert host == "rebind.test"
        return answers.pop(0)

    transport = GuardedTransport(AddressPolicy(), resolver=resolver)
    async with httpx.AsyncClient(transport=transport) as client:
        first = await client.get(f"http://rebind.test:{port}/first")
        assert first.status_code == 200
        assert hits[-1] == ("/first", f"rebind.test:{port}")
    transport = GuardedTransport(AddressPolicy(), resolver=resolver)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(AddressRefused, match=r"rebind\.test \(169\.254\.169\.254\)"):
            await client.get(f"http://rebind.test:{port}/second")
    assert len(hits) == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://x/"])
async def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(TaskFailed, match="only http:// and https://") as info:
        await run_http({"url": url}, _ctx())
    assert not info.value.retryable


def test_a_run_that_targets_metadata_fails_with_the_address(
    local_server: tuple[str, list[Any]],
) -> None:
    url, _ = local_server
    definition = {
        "name": "ssrf",
        "tasks": [
            {"name": "local", "kind": "http", "url": f"{url}/ok"},
            {
                "name": "metadata",
                "kind": "http",
                "url": "http://0xa9fea9fe/latest/meta-data/",
                "depends_on": [],
                "retry": {"max_attempts": 3},
            },
        ],
    }
    run = run_local(definition, timeout=60)
    assert run.task("local").status == "completed"
    metadata = run.task("metadata")
    assert metadata.status == "failed"
    assert "refused to connect to 0xa9fea9fe (169.254.169.254)" in (metadata.error or "")
    assert len(metadata.attempts) == 1  # refused, not retried
