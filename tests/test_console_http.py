"""The console over HTTP without a browser: hostile and malformed requests get a clear 4xx
and never a 500, the security headers are on every answer, and every action is audited.
A node started in-process with no broker (the console does not need one to refuse)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from node.adapters.console import ConsoleServer
from node.adapters.console.users import add_user, disable_user, reset_password
from node.compose import build_node
from node.service import Node
from node.transport.broker import free_port
from tests.process_helpers import read_store
from tests.runtime_helpers import create_nodes, node_env

PASSWORD = "correct horse battery staple"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
async def console(tmp_path) -> AsyncIterator[tuple[Node, ConsoleServer]]:
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = node_env(f"127.0.0.1:{free_port()}", XNODE_CONSOLE_ENABLED="true",
                   XNODE_CONSOLE_PORT="0", XNODE_CONSOLE_MAX_FAILED_LOGINS="3")  # fmt: skip
    node = build_node(dirs["zm-police"], env=env)  # the console started by the node itself
    await node.start()
    [server] = [a for a in node.adapters if isinstance(a, ConsoleServer)]
    for name, role in (("mwila", "officer"), ("chanda", "operator"), ("farai", "auditor")):
        await node._run(add_user, node.store, name, role, PASSWORD, NOW)
    yield node, server
    await node.stop()


async def sign_in(session: aiohttp.ClientSession, url: str, name: str, password: str = PASSWORD):
    async with session.get(url + "/login") as response:
        token = re.search(r'name="csrf" value="([^"]+)"', await response.text()).group(1)
    return await session.post(
        url + "/login",
        data={"csrf": token, "name": name, "password": password},
        allow_redirects=False,
    )


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def test_every_answer_carries_the_security_headers(console):
    _node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        for path in ("/login", "/inbox", "/static/console.css", "/nowhere", "/healthz"):
            async with s.get(server.url + path, allow_redirects=False) as r:
                assert r.headers["X-Frame-Options"] == "DENY", path
                assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
                assert r.headers["X-Content-Type-Options"] == "nosniff", path
        async with s.get(server.url + "/inbox", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/login?next=")


async def test_sign_in_needs_the_forms_token_and_sets_a_strict_cookie(console):
    _node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        r = await s.post(server.url + "/login", data={"name": "mwila", "password": PASSWORD})
        assert r.status == 403  # no token: a login form on another site cannot sign anyone in
        r = await sign_in(s, server.url, "mwila")
        assert r.status == 303
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        async with s.get(server.url + "/inbox") as page:
            assert page.status == 200
            assert "Cache-Control" in page.headers and page.headers["Cache-Control"] == "no-store"


async def test_hostile_posts_get_4xx_never_500(console):
    _node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        await sign_in(s, server.url, "mwila")
        async with s.get(server.url + "/compose?kind=alert") as page:
            token = csrf_of(await page.text())
        cases = [
            ({"csrf": token, "_kind": "receipt"}, 403),
            ({"csrf": token, "_kind": "alert", "_action": "remove:subjects[999999999999]"}, 200),
            ({"csrf": token, "_kind": "alert", "subjects#count": "99999999999999999999",
              "_action": "add:subjects"}, 200),
            ({"csrf": token, "_kind": "alert", "_schema": "../../etc/passwd"}, 422),
            ({"csrf": token, "_kind": "alert", "_to": "nobody-here", "title": "\x00"}, 422),
            ({"csrf": token, "_kind": "alert", "_action": "switch", "_choose": "receipt:Receipt"},
             403),
            ({"csrf": token, "_kind": "alert", "_draft_id": "-1", "_action": "save"}, 200),
            ({"csrf": token, "_kind": "alert", "_action": "import"}, 400),  # no file chosen
        ]  # fmt: skip
        for form, status in cases:
            async with s.post(server.url + "/compose", data=form) as r:
                body = await r.text()
                assert r.status == status, (form, r.status, body[:300])
        raw = f"csrf={token}&_kind=alert&_to=zw-police&title=%ED%A0%80%FF".encode()  # not UTF-8
        async with s.post(server.url + "/compose", data=raw, headers={
                "Content-Type": "application/x-www-form-urlencoded"}) as r:  # fmt: skip
            assert 400 <= r.status < 500, r.status
        for path in ("/messages/99999", "/threads/x", "/compose?reply_to=77", "/compose?draft=5"):
            async with s.get(server.url + path) as r:
                assert r.status == 404, path
        data = aiohttp.FormData()
        data.add_field("csrf", token)
        data.add_field("_kind", "alert")
        data.add_field("_action", "import")
        data.add_field("_import_file", b"{not json", filename="x.json")
        async with s.post(server.url + "/compose", data=data) as r:
            assert r.status == 400 and "invalid JSON" in await r.text()
        async with s.post(server.url + "/language", data={"csrf": token, "language": "xx"}) as r:
            assert r.status == 400
        async with s.post(server.url + "/language",
                          data={"csrf": token, "language": "fr", "back": "//evil.example/"},
                          allow_redirects=False) as r:  # fmt: skip
            assert r.status == 303 and r.headers["Location"] == "/"  # no open redirect


async def test_a_long_password_or_unknown_user_is_a_plain_refusal(console):
    node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        r = await sign_in(s, server.url, "mwila", "x" * 100_000)
        assert r.status == 401
        r = await sign_in(s, server.url, "nobody")
        assert r.status == 401 and "wrong" in await r.text()
        r = await sign_in(s, server.url, "mwila", "wrong password")
        assert r.status == 401 and "wrong" in await r.text()  # the same words: no name oracle
    entries = await node._run(node.store.audit_entries)
    failed = [e.event.detail for e in entries if e.event.event == "console-login-failed"]
    assert {"user": None, "reason": "unknown-user"} in failed
    assert all("x" * 20 not in str(d) for d in failed)  # a password never reaches the log


async def test_disable_and_reset_end_sessions_at_once(console):
    node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        await sign_in(s, server.url, "mwila")
        async with s.get(server.url + "/inbox") as r:
            assert r.status == 200
        await node._run(reset_password, node.store, "mwila", "a new password for mwila", NOW)
        async with s.get(server.url + "/inbox", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
        await sign_in(s, server.url, "mwila", "a new password for mwila")
        async with s.get(server.url + "/inbox") as r:
            assert r.status == 200
        await node._run(disable_user, node.store, "mwila", NOW)
        async with s.get(server.url + "/inbox", allow_redirects=False) as r:
            assert r.status == 303
        r = await sign_in(s, server.url, "mwila", "a new password for mwila")
        assert r.status == 401 and "disabled" in await r.text()


async def test_roles_are_enforced_on_every_route(console):
    _node, server = console
    pages = {"/inbox": "officer", "/compose": "officer", "/drafts": "officer", "/sent": "officer",
             "/ops": "operator", "/ops/peers": "operator", "/ops/quarantine": "operator",
             "/ops/webhook": "operator", "/audit": "auditor"}  # fmt: skip
    allowed = {"officer": {"officer"}, "operator": {"operator", "auditor"},
               "auditor": {"auditor"}}  # fmt: skip
    for user, role in (("mwila", "officer"), ("chanda", "operator"), ("farai", "auditor")):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            await sign_in(s, server.url, user)
            for path, needs in pages.items():
                async with s.get(server.url + path) as r:
                    expected = 200 if needs in allowed[role] else 403
                    assert r.status == expected, (user, path, r.status)
            async with s.get(server.url + "/sent/events", allow_redirects=False) as r:
                assert r.status == (200 if role == "officer" else 403)
                r.close()


async def test_lock_out_and_audit(console):
    node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        for _ in range(3):
            r = await sign_in(s, server.url, "farai", "not the password")
        assert "locked" in await r.text()
        r = await sign_in(s, server.url, "farai")
        assert r.status == 401 and "locked" in await r.text()
    user = await node._run(node.store.console_user, "farai")
    assert user.locked_until is not None and user.failed_logins == 3
    events = [e.event.event for e in await node._run(node.store.audit_entries)]
    assert events.count("console-locked") == 1


def self_signed(directory) -> None:
    """A certificate for 127.0.0.1, as an operator's own CA would issue (here: self-signed)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "console.zm-police.test")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (directory / "console.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "console.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip


async def test_under_tls_cookies_are_secure_and_hsts_is_sent(tmp_path):
    import ssl

    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement"})
    self_signed(dirs["zm-police"].path)
    env = node_env(f"127.0.0.1:{free_port()}", XNODE_CONSOLE_ENABLED="true",
                   XNODE_CONSOLE_PORT="0", XNODE_CONSOLE_TLS_CERTFILE="console.pem",
                   XNODE_CONSOLE_TLS_KEYFILE="console.key")  # fmt: skip
    node = build_node(dirs["zm-police"], env=env)
    await node.start()
    try:
        [server] = [a for a in node.adapters if isinstance(a, ConsoleServer)]
        assert server.url.startswith("https://")
        await node._run(add_user, node.store, "mwila", "officer", PASSWORD, NOW)
        context = ssl.create_default_context(cafile=str(dirs["zm-police"].path / "console.pem"))
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(
            cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=context)
        ) as s:
            r = await sign_in(s, server.url, "mwila")
            assert r.status == 303
            assert "Secure" in r.headers["Set-Cookie"]
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        plain = server.url.replace("https://", "http://")
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientError):
                await s.get(plain + "/login")  # no plain HTTP beside TLS
    finally:
        await node.stop()


def test_a_console_off_loopback_needs_tls_or_a_proxy():
    from node.config import ConfigError, parse_config

    base = '[node]\nid = "zm-police"\nname = "Zambia Police"\nroles = ["law-enforcement"]\n'
    with pytest.raises(ConfigError, match="not loopback"):
        parse_config(base + '[console]\nenabled = true\nhost = "0.0.0.0"\n', {}, "node.toml")
    for extra in ('behind_https_proxy = true\n',
                  'tls_certfile = "c.pem"\ntls_keyfile = "c.key"\n'):  # fmt: skip
        config = parse_config(base + f'[console]\nenabled = true\nhost = "0.0.0.0"\n{extra}',
                              {}, "node.toml")  # fmt: skip
        assert config.console.host == "0.0.0.0"
    with pytest.raises(ConfigError, match="go together"):
        parse_config(base + '[console]\ntls_certfile = "c.pem"\n', {}, "node.toml")
    assert parse_config(base, {}, "node.toml").console.enabled is False  # off by default
    with pytest.raises(ConfigError, match=r"console\.max_failed_logins"):
        parse_config(base, {"XNODE_CONSOLE_MAX_FAILED_LOGINS": "0"}, "node.toml")


async def test_concurrent_guesses_still_lock_the_account(console):
    """Sign-ins for one name take turns: ten guesses at once count as ten (limit 3 here), and
    the right password sent among them does not reset the count."""
    node, server = console

    async def attempt(password: str) -> int:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            return (await sign_in(s, server.url, "mwila", password)).status

    statuses = await asyncio.gather(*(attempt(f"wrong guess {i}") for i in range(10)),
                                    attempt(PASSWORD))  # fmt: skip
    user = await node._run(node.store.console_user, "mwila")
    assert user.locked_until is not None
    assert statuses.count(303) <= 1 and statuses[:10].count(401) == 10
    assert await attempt(PASSWORD) == 401  # locked now, whoever came first


async def test_after_sign_in_only_a_local_path(console):
    _, server = console
    for hostile in ("/\t/evil.example", "/%09/evil.example", "//evil.example", "/\\evil.example",
                    "https://evil.example/", "/ok\r\nSet-Cookie: x=1"):  # fmt: skip
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(server.url + "/login") as page:
                token = csrf_of(await page.text())
            r = await s.post(server.url + "/login", data={"csrf": token, "name": "chanda",
                             "password": PASSWORD, "next": hostile}, allow_redirects=False)  # fmt: skip
            assert r.status == 303 and r.headers["Location"] == "/", hostile
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.get(server.url + "/ops/peers", allow_redirects=True) as page:
            token = csrf_of(await page.text())  # sent to sign in, with next=/ops/peers
            assert "/ops/peers" in await page.text()
        r = await s.post(server.url + "/login", data={"csrf": token, "name": "chanda",
                         "password": PASSWORD, "next": "/ops/peers"}, allow_redirects=False)  # fmt: skip
        assert r.headers["Location"] == "/ops/peers"


async def test_odd_ids_and_fields_are_4xx_not_500(console):
    node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        await sign_in(s, server.url, "mwila")
        for path in ("/messages/99999999999999999999999", "/compose?reply_to=%C2%B2",
                     "/compose?draft=99999999999999999999999", "/compose?draft=%C2%B2",
                     "/threads/%00"):  # fmt: skip
            async with s.get(server.url + path) as r:
                assert r.status == 404, path
                assert r.headers["X-Frame-Options"] == "DENY"
        async with s.get(server.url + "/compose?kind=alert") as page:
            token = csrf_of(await page.text())
        for form in ({"_draft_id": "²", "_action": "save"}, {"subjects#count": "²"},
                     {"_action": "remove:subjects[" + "9" * 5000 + "]"},
                     {"_action": "import", "_import_file": "not a file"}):  # fmt: skip
            async with s.post(server.url + "/compose",
                              data={"csrf": token, "_kind": "alert", **form}) as r:  # fmt: skip
                assert r.status in (200, 400, 422), (form, r.status)
        data = aiohttp.FormData()
        for key, value in (("csrf", token), ("_kind", "alert"), ("_action", "import")):
            data.add_field(key, value)
        data.add_field("_import_file", b'{"title": "\\ud800"}', filename="x.json")
        async with s.post(server.url + "/compose", data=data) as r:
            assert r.status == 400 and "surrogate" in await r.text()
        data = aiohttp.FormData()
        for key, value in (("csrf", token), ("_kind", "alert"), ("_action", "save"),
                           ("title", "Minibus at Nakonde")):  # fmt: skip
            data.add_field(key, value)
        async with s.post(server.url + "/compose", data=data) as r:
            assert r.status == 200
        rows = read_store(node.store.path, "SELECT * FROM console_drafts")
        assert rows and not any(
            b"Nakonde" in (v if isinstance(v, bytes) else str(v).encode())
            for row in rows
            for v in row
        )  # nothing in clear, in any column


async def test_a_live_view_ends_with_the_account_and_is_limited(console):
    node, server = console
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        await sign_in(s, server.url, "mwila")
        streams = [await s.get(server.url + "/sent/events") for _ in range(3)]
        assert [r.status for r in streams] == [200, 200, 200]
        async with s.get(server.url + "/sent/events") as fourth:
            assert fourth.status == 429
        await node._run(disable_user, node.store, "mwila", NOW)
        for r in streams:  # each stream ends by itself within one round (2 s)
            await asyncio.wait_for(r.read(), 15)
            r.close()
