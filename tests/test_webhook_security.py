"""The webhook carries decrypted case data: it goes only where it was configured to go.

- a redirect from the receiving system is never followed: the attempt fails with a clear
  reason, the place the redirect named receives nothing, and the message is posted once the
  receiver answers properly again;
- a plain ``http://`` URL to a host that is not this machine is refused when the node loads
  its configuration, unless ``webhook.allow_plain_http`` says the path is protected otherwise.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from node.adapters.webhook import response_error
from node.compose import build_node
from node.config import ConfigError, parse_config
from node.transport.broker import free_port
from tests.runtime_helpers import eventually, node_env
from tests.test_adapters import Receiver, adapter_env, dirs, request  # noqa: F401 (fixture)

BASE = '[node]\nid = "zm-police"\nname = "ZP"\nroles = ["law-enforcement"]\n'


def config(url: str, extra: str = "", env: dict[str, str] | None = None):
    text = BASE + f'[webhook]\nurl = "{url}"\nsecret_file = "s"\n{extra}'
    return parse_config(text, env or {})


@pytest.mark.parametrize("url", ["http://10.1.2.3/xnode", "http://cases.example.org/in",
                                 "http://127.0.0.1.example.org/x", "http://[fe80::1]/x"])  # fmt: skip
def test_plain_http_to_another_host_is_refused(url):
    with pytest.raises(ConfigError, match=r"webhook\.allow_plain_http"):
        config(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "http://127.9.9.9/x",
                                 "http://localhost/x", "http://[::1]:9000/x",
                                 "https://cases.example.org/in", "https://10.1.2.3/x"])  # fmt: skip
def test_loopback_or_tls_is_accepted(url):
    assert config(url).webhook.url == url


def test_plain_http_elsewhere_only_when_explicitly_allowed():
    assert config("http://10.1.2.3/x", "allow_plain_http = true\n").webhook.allow_plain_http
    with pytest.raises(ConfigError, match=r"webhook\.allow_plain_http"):  # the environment too
        config("https://10.1.2.3/x", env={"XNODE_WEBHOOK_URL": "http://10.1.2.3/x"})


@pytest.mark.parametrize(
    ("status", "location", "expected"),
    [(204, None, None),
     (503, None, "HTTP 503"),
     (307, "http://user:pw@evil.example:8443/steal?x=1", "HTTP 307 redirect to "
      "http://evil.example:8443 not followed; webhook.url must name the final address"),
     (302, "/elsewhere", "HTTP 302 redirect to a path on the same host not followed; "
      "webhook.url must name the final address"),
     (301, None, "HTTP 301 redirect to elsewhere not followed; webhook.url must name the final "
      "address")],
)  # fmt: skip
def test_response_errors_name_the_redirect_without_its_path_or_credentials(
    status, location, expected
):
    assert response_error(status, location) == expected


class Redirector:
    """A receiving system that answers every POST with a redirect to a second server."""

    def __init__(self, status: int, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/xnode"
        self.status, self.target = status, target
        self.posts = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.posts += 1
        return web.Response(status=self.status, headers={"Location": self.target})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/xnode", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_never_followed_with_case_data(dirs, broker, status):  # noqa: F811
    """The receiving system (or whoever took over its address) answers with a redirect to a
    server it controls: that server must receive nothing — no payload, no signature."""
    elsewhere = Receiver()
    await elsewhere.start()
    redirector = Redirector(status, elsewhere.url)
    await redirector.start()
    env_b = adapter_env(broker.bootstrap_servers, dirs["zw-police"].path, elsewhere,
                        XNODE_WEBHOOK_MAX_ATTEMPTS="3")  # fmt: skip
    env_b["XNODE_WEBHOOK_URL"] = redirector.url
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    b = build_node(dirs["zw-police"], env=env_b)
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(request("Report from Beitbridge"))

        async def failed() -> bool:
            m = await b._run(b.store.inbox_message, message_id)
            return m is not None and m.state == "webhook-failed"

        await eventually(failed, 30, "the delivery failed after its attempts")
        assert redirector.posts == 3 and elsewhere.received == []
        rows = b.store._conn.execute(
            "SELECT last_error FROM adapter_deliveries WHERE message_id = ?", (message_id,)
        ).fetchall()
        assert rows[0][0] == (
            f"HTTP {status} redirect to http://127.0.0.1:{elsewhere.port} not followed; "
            "webhook.url must name the final address"
        )
    finally:
        await a.stop()
        await b.stop()
        await redirector.stop()
        await elsewhere.stop()


async def test_once_the_receiver_stops_redirecting_the_message_is_posted(dirs, broker):  # noqa: F811
    real = Receiver()
    await real.start()
    redirector = Redirector(307, "http://127.0.0.1:9/elsewhere")
    await redirector.start()
    env_b = adapter_env(broker.bootstrap_servers, dirs["zw-police"].path, real,
                        XNODE_WEBHOOK_MAX_ATTEMPTS="100")  # fmt: skip
    real_url = env_b["XNODE_WEBHOOK_URL"]
    env_b["XNODE_WEBHOOK_URL"] = redirector.url
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    b = build_node(dirs["zw-police"], env=env_b)
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(request("Report from Nakonde"))

        async def redirected() -> bool:
            return redirector.posts >= 2

        await eventually(redirected, 30, "attempts answered with a redirect")
        # the local system's operator fixes its address: the same port now serves the real one
        await redirector.stop()
        real_on_that_port = Receiver()
        real_on_that_port.port, real_on_that_port.url = redirector.port, redirector.url
        await real_on_that_port.start()
        try:

            async def posted() -> bool:
                return real_on_that_port.ids() == [message_id]

            await eventually(posted, 30, "the message posted once the redirect is gone")
            assert real_on_that_port.signatures_ok and real.received == []
            assert real_url != redirector.url
        finally:
            await real_on_that_port.stop()
    finally:
        await a.stop()
        await b.stop()
        await real.stop()
