"""The officer console in a real browser (Debian's chromium driven by Playwright) against two
real `xnode run` processes and the development broker as a third process.

Every flow is what a person does: sign in, write an alert with a mistake, read the error
beside the field, fix it and send; the other agency's officer finds it in the inbox with the
verified sender and the handling banner, opens and acknowledges it; an MLA request answered
through "reply"; a referral refused at the consent gate, then sent with consent; French and
Arabic pages; CSRF-less posts; roles; lock-out. axe-core checks each page it passes.

Set ``XNODE_SCREENSHOTS=docs/console`` to refresh the README's screenshots from this run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.transport.broker import free_port
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    http,
    init_nodes,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
AXE = Path(os.environ.get("XNODE_AXE_JS", ROOT / "node_modules" / "axe-core" / "axe.min.js"))
PASSWORD = "correct horse battery staple"
SHOTS = os.environ.get("XNODE_SCREENSHOTS")

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api")


@dataclass
class Agency:
    node_id: str
    directory: Path
    url: str


@dataclass
class Region:
    secretariat: Agency  # zm-secretariat: sends alerts, MLA requests and referrals
    police: Agency  # zw-police: receives them
    bootstrap: str = ""


def add_user(agency: Agency, name: str, role: str, *extra: str) -> None:
    result = subprocess.run(
        [*xnode_command(), "users", "add", "--dir", str(agency.directory), name, "--role", role,
         "--password-stdin", *extra],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def xnode_command() -> list[str]:
    from tests.process_helpers import XNODE

    return list(XNODE)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    root = tmp_path_factory.mktemp("console")
    broker = BrokerProcess(root)
    broker.start()
    dirs = init_nodes(root, {"zm-secretariat": "secretariat", "zw-police": "law-enforcement"})
    processes, agencies = [], {}
    # zw-police hands received messages to a local system that is down: one attempt, then
    # webhook-failed, for its operator to retry from the console
    secret = root / "webhook.secret"
    secret.write_text("a shared secret for the webhook\n")
    secret.chmod(0o600)
    webhook = {"XNODE_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/inbound",
               "XNODE_WEBHOOK_SECRET_FILE": str(secret), "XNODE_WEBHOOK_MAX_ATTEMPTS": "1",
               "XNODE_WEBHOOK_STATUS_EVENTS": "false"}  # fmt: skip
    for node_id, directory in dirs.items():
        port = free_port()
        env = node_env(broker.bootstrap, XNODE_CONSOLE_ENABLED="true",
                       XNODE_CONSOLE_PORT=str(port),
                       **(webhook if node_id == "zw-police" else {}))  # fmt: skip
        log = root / f"{node_id}.log"
        processes.append(spawn("run", "--dir", directory, env=env, log=log))
        agencies[node_id] = Agency(node_id, directory, f"http://127.0.0.1:{port}")
        wait_for(lambda log=log: "console_listening" in log.read_text(), 60, f"{node_id} console")
    region = Region(agencies["zm-secretariat"], agencies["zw-police"])
    add_user(region.secretariat, "mwila", "officer")
    add_user(region.secretariat, "chanda", "operator")
    add_user(region.police, "tendai", "officer")
    add_user(region.police, "rudo", "supervisor")
    add_user(region.police, "farai", "auditor")
    add_user(region.police, "locky", "officer")
    add_user(region.police, "nyasha", "operator")
    region.bootstrap = broker.bootstrap
    yield region
    for process in processes:
        stop(process)
    broker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Person:
    """One browser context (its own cookies) used by one user; collects CSP violations."""

    def __init__(self, browser: object, agency: Agency, user: str, locale: str = "en-GB") -> None:
        self.agency = agency
        self.context = browser.new_context(  # type: ignore[attr-defined]
            locale=locale, viewport={"width": 1280, "height": 900}
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error"
                     else None)  # fmt: skip
        self.page.goto(agency.url + "/login")
        self.page.fill("#name", user)
        self.page.fill("#password", PASSWORD)
        self.page.click("main button[type=submit]")
        assert "/login" not in self.page.url, self.page.inner_text("main")

    def go(self, path: str) -> object:
        return self.page.goto(self.agency.url + path)

    def shot(self, name: str, full_page: bool = True) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)

    def shot_of(self, name: str, selector: str) -> None:
        """Just one part of the page, e.g. the fieldset holding an error."""
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.locator(selector).screenshot(path=str(Path(SHOTS) / f"{name}.png"))

    def axe(self, where: str) -> None:
        """Zero serious or critical axe-core violations on the page as it stands, and no
        console errors (a CSP refusal of an inline script or style would be one)."""
        assert AXE.exists(), f"axe-core not found at {AXE}: npm install axe-core"
        self.page.evaluate(AXE.read_text() + "\n;0")
        violations = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => ['serious', 'critical'].includes(v.impact))"
            ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target).join(' | '))"
        )
        assert violations == [], f"{where}: {violations}"
        # a page answered 4xx on purpose (a refused form, a 403) is logged as a failed load
        expected = "Failed to load resource: the server responded with a status of 4"
        problems = [p for p in self.problems if not p.startswith(expected)]
        self.problems.clear()
        assert problems == [], f"{where}: {problems}"

    def close(self) -> None:
        self.context.close()


def future(days: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def load_json(person: Person, document: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "import.json"
    path.write_text(json.dumps(document))
    person.page.set_input_files("#f-_import_file", str(path))
    person.page.click("button[value=import]")


def test_headers_and_sign_in_page(region: Region) -> None:
    status, _ = http("GET", region.secretariat.url + "/login")
    assert status == 200
    import urllib.request

    with urllib.request.urlopen(region.secretariat.url + "/login") as response:
        headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_alert_with_a_mistake_then_fixed_reaches_the_other_officer(
    region: Region, browser: object, tmp_path: Path
) -> None:
    sender = Person(browser, region.secretariat, "mwila")
    sender.go("/compose?kind=alert")
    sender.axe("compose (empty)")
    page = sender.page
    page.check("input[name=_to][value=zw-police]")
    page.select_option("#f-handling-code", "H2")
    page.fill("#f-handling-legal_basis", "SADC Protocol on Trafficking in Persons")
    page.fill("#f-handling-language", "en")
    page.fill("#f-handling-retention_days", "ninety")  # the mistake
    page.select_option("#f-action", "New")
    page.select_option("#f-alert_type", "MovementInProgress")
    page.select_option("#f-urgency", "Immediate")
    page.fill("#f-title", "Two girls moved towards Beitbridge with an adult man")
    page.fill("#f-description", "Seen at Chirundu boarding a white minibus towards Harare.")
    page.click("button[value='add:subjects']")  # a list item added by a form post (no JS needed)
    page.select_option("#f-subjects-0--role", "PossibleVictim")
    page.fill("#f-subjects-0--person-estimated_age", "15")
    page.select_option("#f-source_reliability", "B")
    page.select_option("#f-information_accuracy", "2")
    page.fill("#f-valid_until", future(7))
    page.click("button[value=send]")
    # refused: the error summary at the top links to the field, the error stands beside it
    assert "/compose" in page.url
    error = page.locator("#f-handling-retention_days-error")
    assert "integer" in error.inner_text()
    assert page.get_attribute("#f-handling-retention_days", "aria-invalid") == "true"
    assert page.locator("#error-summary a[href='#f-handling-retention_days']").count() == 1
    assert page.input_value("#f-title").startswith("Two girls")  # nothing typed was lost
    sender.axe("compose with an error")
    sender.shot("compose-error", full_page=False)
    sender.shot_of("compose-field-error", "#f-handling")
    page.fill("#f-handling-retention_days", "90")
    page.click("button[value=send]")
    assert "/sent" in page.url
    page.evaluate("window.__notReloaded = true")
    # the delivery state changes in place (Server-Sent Events), without a reload
    delivered = page.locator("#sent-table li[data-recipient=zw-police].state-delivered")
    delivered.wait_for(timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    sender.axe("sent")
    sender.shot("sent")

    receiver = Person(browser, region.police, "tendai")
    receiver.go("/inbox")
    row = receiver.page.locator("tr.unread", has_text="Two girls moved towards Beitbridge")
    assert row.count() == 1
    assert "zm-secretariat" in row.inner_text()
    receiver.axe("inbox")
    receiver.shot("inbox")
    receiver.page.click("text=Two girls moved towards Beitbridge")
    banner = receiver.page.locator(".banner")
    assert "H2" in banner.inner_text() and "No onward dissemination" in banner.inner_text()
    assert "signature verified" in receiver.page.inner_text("main")
    assert receiver.page.locator("text=Possible victim").count() >= 1  # a label, not a code
    receiver.axe("message")
    receiver.shot("message")
    receiver.page.click("button:has-text('Acknowledge')")
    assert receiver.page.inner_text("#state") == "Acked"
    # the acknowledgement is in the audit chain with the person who did it
    rows = read_store(region.police.directory / "node.db",
                      "SELECT detail FROM audit WHERE event = 'console-action'")  # fmt: skip
    assert any('"acknowledge"' in r[0] and '"tendai"' in r[0] for r in rows)
    sender.close()
    receiver.close()


def test_mla_request_answered_through_reply(
    region: Region, browser: object, tmp_path: Path
) -> None:
    sender = Person(browser, region.secretariat, "mwila")
    sender.go("/compose?kind=mla")
    request = json.loads((EXAMPLES / "mla-request.json").read_text())
    request["deadline"] = future(60) + ":00Z"
    load_json(sender, {"kind": "mla", "to": ["zw-police"], "payload": request}, tmp_path)
    assert sender.page.input_value("#f-summary_of_facts")  # the form holds the file's content
    sender.page.click("button[value=send]")
    assert "/sent" in sender.page.url, sender.page.inner_text("main")

    police = Person(browser, region.police, "tendai")
    police.go("/inbox?kind=mla")
    police.page.locator("table.list a").first.click()
    police.page.click("a:has-text('MLA response')")
    page = police.page
    # the reply knows its recipient, its thread and the request it answers
    assert page.is_checked("input[name=_to][value=zm-secretariat]")
    request_id = page.input_value("#f-request_id")
    assert len(request_id) == 36
    assert page.input_value("#f-handling-legal_basis")  # the legal frame is carried over
    page.select_option("#f-status", "Executed")
    # what a member sends is shown as text, never as markup (another agency's hostile bytes)
    page.fill(
        "#f-results",
        "Mobile money records obtained and certified. <img src=x "
        "onerror=\"document.title='owned'\"><script>document.title='owned'</script>",
    )
    page.click("button[value=send]")
    assert "/sent" in page.url, page.inner_text("main")

    def answered() -> bool:
        sender.go("/inbox?kind=mla")
        return sender.page.locator("text=Mobile money records").count() > 0 or (
            sender.page.locator("td", has_text="MLA response").count() > 0)  # fmt: skip

    wait_for(answered, 30, "the MLA response in the requester's inbox")
    sender.page.locator("table.list a").first.click()
    assert "<script>document.title='owned'</script>" in sender.page.inner_text("article.payload")
    assert sender.page.locator("article.payload img, article.payload script").count() == 0
    assert sender.page.title() != "owned"
    sender.page.click("text=Show the whole case")
    timeline = sender.page.inner_text("ol.timeline")
    assert "MLA request" in timeline and "MLA response" in timeline
    sender.axe("thread")
    sender.shot("thread")
    sender.close()
    police.close()


def test_referral_refused_at_the_consent_gate_then_sent_with_consent(
    region: Region, browser: object, tmp_path: Path
) -> None:
    worker = Person(browser, region.secretariat, "mwila")
    worker.go("/compose?kind=referral")
    referral = json.loads((EXAMPLES / "referral.json").read_text())
    del referral["consent"]
    referral["requested_response_date"] = future(14)[:10]
    load_json(worker, {"kind": "referral", "to": ["zw-police"], "payload": referral}, tmp_path)
    page = worker.page
    gates = page.inner_text("aside.gates")
    assert "Consent" in gates and "Child safeguards" in gates  # explained before sending
    page.click("button[value=send]")
    assert "/compose" in page.url
    consent_error = page.locator("#f-consent-error")
    assert "consent" in consent_error.inner_text().lower()
    assert page.locator("#error-summary a[href='#f-consent']").count() == 1
    worker.axe("compose refused at the consent gate")
    worker.shot("compose-consent-gate", full_page=False)
    page.check("#f-consent-con_Consent")
    page.check("#f-consent-consent_for_services")
    page.check("#f-consent-informed_of_purpose_and_use")
    page.check("#f-consent-informed_of_right_to_withdraw")
    page.fill("#f-consent-share_with_nodes", "zw-police")
    page.fill("#f-consent-recorded_by", "Thandiwe Nkosi, social worker")
    page.fill("#f-consent-recorded_at", (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
              .strftime("%Y-%m-%dT%H:%M"))  # fmt: skip
    page.click("button[value=send]")
    assert "/sent" in page.url, page.inner_text("main")
    worker.close()


def test_drafts_are_saved_and_sealed(region: Region, browser: object) -> None:
    officer = Person(browser, region.secretariat, "mwila")
    officer.go("/compose?kind=alert")
    officer.page.fill("#f-title", "Draft about a minibus at Nakonde")
    officer.page.click("button[value=save]")
    assert "Draft saved" in officer.page.inner_text("main")
    officer.go("/drafts")
    officer.axe("drafts")
    officer.page.click("text=Draft about a minibus at Nakonde")
    assert officer.page.input_value("#f-title") == "Draft about a minibus at Nakonde"
    rows = read_store(region.secretariat.directory / "node.db", "SELECT sealed FROM console_drafts")
    assert rows and all(b"Nakonde" not in bytes(r[0]) for r in rows)  # no plaintext at rest
    officer.close()


def test_french_and_arabic_interfaces(region: Region, browser: object) -> None:
    french = Person(browser, region.police, "tendai", locale="fr-FR")
    french.go("/inbox")
    assert french.page.get_attribute("html", "lang") == "fr"
    assert "Boîte de réception" in french.page.inner_text("header")
    french.axe("inbox in French")
    french.close()
    arabic = Person(browser, region.police, "rudo", locale="ar")
    arabic.go("/inbox?kind=alert")  # a filter on one kind still counts the others' unread
    referrals = arabic.page.inner_text("ul.counts a[href*='kind=referral'] .badge")
    assert int(referrals) >= 1
    arabic.go("/inbox")
    assert arabic.page.get_attribute("html", "dir") == "rtl"
    assert arabic.page.get_attribute("html", "lang") == "ar"
    arabic.page.locator("table.list a").first.click()
    arabic.axe("message in Arabic")
    arabic.shot("message-ar")
    # a choice made in the header is kept for the user
    arabic.page.select_option("#language", "pt")
    arabic.page.click("header form[action='/language'] button")
    assert arabic.page.get_attribute("html", "lang") == "pt"
    arabic.close()


def test_posts_without_the_csrf_token_are_refused(region: Region, browser: object) -> None:
    officer = Person(browser, region.police, "tendai")
    request = officer.context.request
    for form in ({}, {"csrf": "forged"}):
        response = request.post(region.police.url + "/messages/1/ack", form=form)
        assert response.status == 403, form
        assert "CSRF" in response.text()
    response = request.post(region.police.url + "/logout", form={})
    assert response.status == 403
    officer.close()


def test_roles_keep_people_to_their_pages(region: Region, browser: object) -> None:
    officer = Person(browser, region.police, "tendai")
    for path in ("/ops", "/ops/peers", "/ops/quarantine", "/audit"):
        assert officer.go(path).status == 403, path  # type: ignore[attr-defined]
    officer.axe("403 page")
    officer.close()
    auditor = Person(browser, region.police, "farai")
    assert auditor.go("/audit").status == 200  # type: ignore[attr-defined]
    assert "Audit chain intact" in auditor.page.inner_text("main")
    for path in ("/inbox", "/compose", "/ops"):
        assert auditor.go(path).status == 403, path  # type: ignore[attr-defined]
    auditor.close()
    operator = Person(browser, region.secretariat, "chanda")
    for path, name in (("/ops", "ops"), ("/ops/peers", "peers"), ("/ops/quarantine", "quarantine"),
                       ("/ops/webhook", "webhook"), ("/audit", "audit")):  # fmt: skip
        assert operator.go(path).status == 200, path  # type: ignore[attr-defined]
        operator.axe(path)
        if name not in ("quarantine", "webhook"):  # shown with entries by the operator test
            operator.shot(name)
    assert "zw-police" in (operator.go("/ops/peers") and operator.page.inner_text("main"))
    assert operator.go("/inbox").status == 403  # type: ignore[attr-defined]
    operator.close()


def test_lock_out_after_repeated_failures(region: Region, browser: object) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    for _ in range(5):
        page.goto(region.police.url + "/login")
        page.fill("#name", "locky")
        page.fill("#password", "not the password at all")
        page.click("main button[type=submit]")
    assert "locked" in page.inner_text(".error-summary")
    page.fill("#name", "locky")
    page.fill("#password", PASSWORD)  # the right password no longer opens it
    page.click("main button[type=submit]")
    assert "/login" in page.url and "locked" in page.inner_text(".error-summary")
    context.close()
    # an operator lifts the lock by setting a new password
    result = subprocess.run(
        [*xnode_command(), "users", "reset", "--dir", str(region.police.directory), "locky",
         "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    Person(browser, region.police, "locky").close()
    events = [r[0] for r in read_store(region.police.directory / "node.db",
                                       "SELECT event FROM audit WHERE detail LIKE '%locky%'")]  # fmt: skip
    assert "console-locked" in events and events.count("console-login-failed") >= 6
    listing = xnode("users", "list", "--dir", region.police.directory).stdout
    assert "locky" in listing


JUNK = """
import asyncio, sys
from aiokafka import AIOKafkaProducer
async def main():
    producer = AIOKafkaProducer(bootstrap_servers=sys.argv[1])
    await producer.start()
    try:
        await producer.send_and_wait("xchg.zw-police.alert", b"JUNK-Chirundu-7731 hostile bytes", key=b"x")
    finally:
        await producer.stop()
asyncio.run(main())
"""


def test_operator_discards_quarantine_and_retries_the_webhook(region: Region, browser: object):
    """Junk on zw-police's topic is quarantined and shown as metadata only; the operator
    discards it (audited). The alert received earlier failed its webhook; Retry queues it."""
    subprocess.run([sys.executable, "-c", JUNK, region.bootstrap], check=True, timeout=60)
    operator = Person(browser, region.police, "nyasha")

    def quarantined() -> bool:
        operator.go("/ops/quarantine")
        return operator.page.locator("table.list tbody tr").count() > 0

    wait_for(quarantined, 30, "the junk record in quarantine")
    row = operator.page.locator("table.list tbody tr").first
    assert "not authenticated" in row.inner_text()
    assert "JUNK-Chirundu" not in operator.page.content()  # never the refused bytes
    operator.axe("quarantine")
    operator.shot("quarantine")
    operator.page.once("dialog", lambda dialog: dialog.accept())  # the confirmation (script)
    row.locator("button").click()
    operator.page.wait_for_url("**/ops/quarantine?discarded=1")
    operator.go("/ops/webhook")
    failed = operator.page.locator("table.list tbody tr")
    wait_for(lambda: operator.go("/ops/webhook") and failed.count() > 0, 30, "a webhook failure")
    operator.axe("webhook failures")
    operator.shot("webhook")
    operator.page.click("button:has-text('Retry all')")
    operator.page.wait_for_url("**/ops/webhook?retried=*")
    assert not operator.page.url.endswith("retried=0")
    details = [r[0] for r in read_store(region.police.directory / "node.db",
               "SELECT detail FROM audit WHERE event = 'console-action'")]  # fmt: skip
    assert any('"discard-quarantined"' in d and '"nyasha"' in d for d in details)
    assert any('"webhook-retry"' in d and '"nyasha"' in d for d in details)
    operator.close()


def test_keyboard_alone_signs_in_reads_and_acknowledges(region: Region, browser: object):
    """No mouse: Tab, type and Enter through sign-in, the inbox and a message; the focused
    element always shows a focus ring."""
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(region.police.url + "/login")
    keyboard = page.keyboard

    def tab_to(selector: str, limit: int = 60) -> None:
        for _ in range(limit):
            keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement.matches(s)", selector):
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"no visible focus on {selector}"
                return
        raise AssertionError(f"{selector} is not reachable with Tab")

    tab_to("#name")
    keyboard.type("rudo")
    tab_to("#password")
    keyboard.type(PASSWORD)
    keyboard.press("Enter")
    page.wait_for_url("**/inbox")
    tab_to("table.list a")
    keyboard.press("Enter")
    page.wait_for_url("**/messages/*")
    tab_to("form[action$='/ack'] button")
    keyboard.press("Enter")
    page.wait_for_url("**acked=1")
    context.close()
