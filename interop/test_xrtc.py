"""The XRTC API (shared/seeds/xrtc-api.txt) checked against Portico by clients written by others:
the published Python SDK xrtc 0.1.5 (XRTC: sync, over requests; AXRTC: async, over aiohttp),
the real curl binary running the seed's own examples, and a real SMTP server (aiosmtpd) that
receives the registration e-mails Portico sends.

Each test registers its own account end to end (registrationstart, the code read from the e-mail
the SMTP server received, registrationcode), with an e-mail address of its own, so the tests do
not depend on each other. Portico instances:

    portico    module-scoped, TLS (generated certificate), the seed's default [xrtc] limits
    fast       module-scoped, TLS, get_item_timeout_ms = 1000 and stream_max_ms = 3000, so that
               watches and streams end on their own quickly
    (own)      the curl test runs one with [tls] enabled = false; the STARTTLS test one whose
               [mail] goes to an SMTP server requiring STARTTLS and AUTH

How the SDK is pointed at Portico without editing it or turning verification off:
  * URLs: LOGIN_URL, SET_URL and GET_URL in the environment (the SDK's ConnectionConfiguration
    reads them), with the host `localhost`: aiohttp's default cookie jar drops cookies from hosts
    that are IP addresses, so with 127.0.0.1 the async SDK would never send JSESSIONID back.
  * Trust, sync SDK: requests honours REQUESTS_CA_BUNDLE, set to Portico's generated certificate.
  * Trust, async SDK: AXRTC builds its SSL context from `certifi.where()`; the test replaces the
    name `certifi` inside the SDK module (only there, undone after the test) with an object whose
    where() returns Portico's certificate, so the SDK's own verifying context trusts Portico.
"""

import asyncio
import email
import email.policy
import functools
import json
import os
import pathlib
import re
import secrets
import socket
import ssl
import string
import subprocess
import threading
import time
import types
import uuid
from dataclasses import dataclass

import aiohttp
import pytest
import requests
import xrtc.api.async_context_manager as xrtc_async
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives.asymmetric import ec
from xrtc import AXRTC, XRTC

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))

MAIL_FROM = "portico@localhost"
ACCOUNT_ID = re.compile(r"^AC\d+$")
API_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
EMAIL_CODE = re.compile(r"\b(\d{6})\b")

# The `fast` instance's limits (seconds here, milliseconds in its configuration).
GET_ITEM_TIMEOUT = 1.0
STREAM_MAX = 3.0

GET_PATH = "/v1/item/get"


# --- A real SMTP server that keeps what it receives ---

@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    tls: bool  # the message came after STARTTLS
    login: bytes | None  # the AUTH user name, if the client authenticated

    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, f"no text/plain body in:\n{self.message}"
        return part.get_content()

    def code(self) -> str:
        """The 6-digit registration code, which the body carries on a line of its own."""
        body = self.body()
        codes = EMAIL_CODE.findall(body)
        assert codes, f"no 6-digit code in the e-mail body:\n{body}"
        assert codes[0] in [line.strip() for line in body.splitlines()], \
            f"the code is not on a line of its own:\n{body}"
        return codes[0]


class Mailbox:
    """An aiosmtpd handler: every message delivered, kept with how it was delivered."""

    def __init__(self):
        self.delivered: list[Delivered] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        delivered = Delivered(envelope.mail_from, [r.lower() for r in envelope.rcpt_tos], message,
                              session.ssl is not None,
                              getattr(session.auth_data, "login", None) if session.authenticated
                              else None)
        with self.changed:
            self.delivered.append(delivered)
            self.changed.notify_all()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Delivered]:
        return [d for d in self.delivered if address.lower() in d.rcpt_tos]

    def wait(self, address: str, index: int, timeout: float = 30) -> Delivered:
        """The `index`-th message to `address` (counting from 0), waiting for it to arrive."""
        with self.changed:
            arrived = self.changed.wait_for(lambda: len(self.to(address)) > index, timeout)
            assert arrived, f"no e-mail #{index + 1} to {address} within {timeout} s"
            return self.to(address)[index]


def free_port() -> int:
    # aiosmtpd's Controller checks it is up by connecting to its configured port, so it needs a
    # real port number rather than 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """aiosmtpd on 127.0.0.1, in its own thread; `smtp_options` go to aiosmtpd's SMTP class."""

    def __init__(self, **smtp_options):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     **smtp_options)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# --- Portico with an XRTC configuration ---

class XrtcPortico:
    """`portico serve` with [mail] pointing at `smtp`, optional [xrtc] limits and extra [mail]
    fields, over HTTPS (the generated certificate) or plain HTTP."""

    def __init__(self, tmp: pathlib.Path, smtp: SmtpServer, *, tls: bool = True,
                 xrtc: dict | None = None, mail: dict | None = None):
        mail_fields = {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": "none",
                       "from": f"Portico <{MAIL_FROM}>", **(mail or {})}
        text = tokenkit.toml_section("mail", mail_fields)
        if xrtc:
            text += tokenkit.toml_section("xrtc", xrtc)
        if not tls:
            text += tokenkit.toml_section("tls", {"enabled": False})
        config = tmp / "portico.toml"
        config.write_text(text)
        self.server = tokenkit.Portico(BINARY, str(config), str(tmp / "data"),
                                       str(tmp / "portico.log"), scheme="https" if tls else "http")
        self.tls = tls
        self.url = self.server.url  # http(s)://127.0.0.1:PORT
        self.port = int(self.url.rsplit(":", 1)[1])
        self.cert = self.server.cert
        self.verify = self.cert if tls else True
        # For clients with cookie jars that ignore IP-address hosts (aiohttp; see the docstring).
        self.named_url = self.url.replace("://127.0.0.1:", "://localhost:")

    def post(self, path: str, body, session: requests.Session | None = None,
             **options) -> requests.Response:
        return (session or requests).post(self.url + path, json=body, verify=self.verify,
                                          timeout=30, **options)

    def stop(self) -> int:
        return self.server.stop()


@dataclass
class Key:
    account_id: str
    api_key: str
    name: str


def unique_email(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:12]}@example.com"


def start_registration(portico: XrtcPortico, address: str) -> str:
    started = portico.post("/v1/auth/registrationstart", {"email": address})
    assert started.status_code == 200, started.text
    token = started.json()["registrationtoken"]
    assert isinstance(token, str) and token
    return token


def register(portico: XrtcPortico, mailbox: Mailbox, address: str) -> Key:
    """Registration end to end: start, the code from the e-mail, the code. A known e-mail gets a
    new key on its account."""
    seen = len(mailbox.to(address))
    token = start_registration(portico, address)
    code = mailbox.wait(address, seen).code()
    done = portico.post("/v1/auth/registrationcode", {"registrationtoken": token,
                                                      "emailcode": code})
    assert done.status_code == 200, done.text
    body = done.json()
    assert ACCOUNT_ID.match(body["accountid"]), body
    assert API_KEY.match(body["apikey"]), body
    assert isinstance(body["apikeyname"], str) and body["apikeyname"], body
    return Key(body["accountid"], body["apikey"], body["apikeyname"])


def tampered(token: str) -> str:
    """`token` with its first letter or digit replaced by another of the same kind."""
    index = next(i for i, c in enumerate(token) if c.isascii() and c.isalnum())
    kind = next(k for k in (string.digits, string.ascii_lowercase, string.ascii_uppercase)
                if token[index] in k)
    other = kind[(kind.index(token[index]) + 1) % len(kind)]
    return token[:index] + other + token[index + 1:]


def xrtc_error(reply: requests.Response, status: int = 400) -> tuple[int, int]:
    """(errorgroup, errorcode) of an XRTC error response with HTTP `status`."""
    assert reply.status_code == status, f"{reply.status_code} {reply.text}"
    error = reply.json()["error"]
    assert isinstance(error["errormessage"], str)
    return error["errorgroup"], error["errorcode"]


def login(portico: XrtcPortico, key: Key,
          session: requests.Session | None = None) -> requests.Response:
    return portico.post("/v1/auth/login", {"accountid": key.account_id, "apikey": key.api_key},
                        session)


def logged_in(portico: XrtcPortico, key: Key) -> requests.Session:
    session = requests.Session()
    reply = login(portico, key, session)
    assert reply.status_code == 200, reply.text
    return session


def assert_now_ms(value) -> None:
    assert isinstance(value, int) and abs(value - time.time() * 1000) < 60_000, value


# --- Fixtures ---

@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


def _started(tmp, smtp, **options):
    portico = XrtcPortico(tmp, smtp, **options)
    yield portico
    assert portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"


@pytest.fixture(scope="module")
def portico(tmp_path_factory, smtp):
    yield from _started(tmp_path_factory.mktemp("xrtc"), smtp)


@pytest.fixture(scope="module")
def fast(tmp_path_factory, smtp):
    yield from _started(tmp_path_factory.mktemp("xrtc-fast"), smtp,
                        xrtc={"get_item_timeout_ms": int(GET_ITEM_TIMEOUT * 1000),
                              "stream_max_ms": int(STREAM_MAX * 1000)})


@pytest.fixture
def sdk(monkeypatch):
    """Points the unmodified SDK at a Portico and makes it trust Portico's certificate (see the
    module docstring for why each of these is needed)."""

    def point_at(portico: XrtcPortico) -> None:
        monkeypatch.setenv("LOGIN_URL", portico.named_url + "/v1/auth/login")
        monkeypatch.setenv("SET_URL", portico.named_url + "/v1/item/set")
        monkeypatch.setenv("GET_URL", portico.named_url + GET_PATH)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", portico.cert)
        monkeypatch.setattr(xrtc_async, "certifi",
                            types.SimpleNamespace(where=lambda: portico.cert))

    return point_at


class SentRequests:
    """Tells when the async SDK has written a request to its connection.

    A watch or stream test must set its items only once the get is on its way; waiting for that
    is the synchronisation, where a sleep would only guess. The SDK opens its own
    aiohttp.ClientSession, so the name `aiohttp` inside the SDK module (only there, undone after
    the test) is given a ClientSession carrying an aiohttp TraceConfig. aiohttp calls
    on_request_chunk_sent in the requesting task right before that task writes the body to the
    socket, without yielding in between, so whoever is woken by it runs after the write."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []  # one entry per request, in the order they were sent
        self._changed: asyncio.Condition | None = None
        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(self._chunk_sent)
        traced = types.ModuleType("aiohttp")
        traced.__dict__.update(vars(aiohttp))
        traced.ClientSession = functools.partial(aiohttp.ClientSession, trace_configs=[trace])
        monkeypatch.setattr(xrtc_async, "aiohttp", traced)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _chunk_sent(self, session, context, params) -> None:
        if getattr(context, "counted", False):
            return
        context.counted = True
        self.paths.append(params.url.path)
        async with self._condition():
            self._condition().notify_all()

    def count(self, path: str) -> int:
        return self.paths.count(path)

    async def wait(self, path: str, count: int, timeout: float = 10) -> None:
        """Until `count` requests to `path` have been sent."""
        async with self._condition():
            await asyncio.wait_for(
                self._condition().wait_for(lambda: self.count(path) >= count), timeout)


@pytest.fixture
def sent(monkeypatch):
    return SentRequests(monkeypatch)


async def collect(items) -> list:
    return [item async for item in items]


# --- 1. Registration, login and their errors ---

def test_registration_by_email_and_the_errors(portico, smtp):
    address = unique_email("alice")
    first = register(portico, smtp.mailbox, address)

    mail = smtp.mailbox.to(address)[0]
    assert mail.mail_from == MAIL_FROM
    assert MAIL_FROM in mail.message["From"]
    assert "code" in mail.message["Subject"].lower()
    assert mail.message.get_content_type() == "text/plain"
    assert mail.body().isascii()

    # A second registration with the same e-mail: a new key on the same account.
    second = register(portico, smtp.mailbox, address)
    assert second.account_id == first.account_id
    assert second.api_key != first.api_key
    assert len(smtp.mailbox.to(address)) == 2

    # Not an e-mail address: INVALID_EMAIL, group 3 (registration).
    assert xrtc_error(portico.post("/v1/auth/registrationstart",
                                   {"email": "not-an-e-mail-address"})) == (3, 32)

    other = unique_email("mallory")
    token = start_registration(portico, other)
    right = smtp.mailbox.wait(other, 0).code()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    # A token of the right shape that no registration started: INVALID_TOKEN.
    assert xrtc_error(portico.post("/v1/auth/registrationcode",
                                   {"registrationtoken": tampered(token),
                                    "emailcode": right})) == (3, 33)

    # Wrong codes: INVALID_CODE twice, then MAX_CODE_RETRY on the third wrong try.
    attempt = {"registrationtoken": token, "emailcode": wrong}
    assert xrtc_error(portico.post("/v1/auth/registrationcode", attempt)) == (3, 34)
    assert xrtc_error(portico.post("/v1/auth/registrationcode", attempt)) == (3, 34)
    assert xrtc_error(portico.post("/v1/auth/registrationcode", attempt)) == (3, 42)
    # That registration is over: the right code no longer gets an account.
    late = portico.post("/v1/auth/registrationcode",
                        {"registrationtoken": token, "emailcode": right})
    assert late.status_code == 400, late.text

    # Login with a key the account does not have: INVALID_CREDENTIALS, group 4 (login).
    assert xrtc_error(login(portico, Key(first.account_id, secrets.token_hex(16), ""))) == (4, 35)

    # Both keys log in; the same key again within login_timeout_ms: TOO_FREQUENT_LOGIN.
    for key in (first, second):
        reply = login(portico, key)
        assert reply.status_code == 200, reply.text
        assert_now_ms(reply.json()["servertimestamp"])
        cookies = [c for c in reply.raw.headers.getlist("Set-Cookie")
                   if c.startswith("JSESSIONID=")]
        assert len(cookies) == 1, reply.headers
        cookie = cookies[0]
        attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
        assert "httponly" in attributes and "secure" in attributes, cookie
    assert xrtc_error(login(portico, second)) == (4, 45)


def test_item_requests_without_a_session_are_401(portico):
    body = {"items": [{"portalid": "abc", "payload": "x"}]}
    for cookies in (None, {"JSESSIONID": "not-a-session"}):
        assert xrtc_error(portico.post("/v1/item/set", body, cookies=cookies), 401)[1] == 10011
        assert xrtc_error(portico.post(GET_PATH, {"portals": [{"portalid": "abc"}]},
                                       cookies=cookies), 401)[1] == 10011


# --- 2. The e-mail over STARTTLS with AUTH ---

def test_registration_email_over_starttls_with_auth(tmp_path):
    # A certificate for the SMTP server at 127.0.0.1 (IP SAN), given to Portico as ca_file.
    key = ec.generate_private_key(ec.SECP256R1())
    cert = tokenkit.self_signed(key, "smtp.test", "127.0.0.1")
    (tmp_path / "smtp-cert.pem").write_bytes(tokenkit.pem(cert))
    (tmp_path / "smtp-key.pem").write_bytes(tokenkit.private_key_pem(key))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem")

    user, password = "portico-mailer", secrets.token_urlsafe(16)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append(auth_data.login if isinstance(auth_data, LoginPassword) else None)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, auth_data=auth_data)

    smtp = SmtpServer(tls_context=tls, require_starttls=True, authenticator=authenticator,
                      auth_required=True, auth_require_tls=True)
    portico = None
    try:
        portico_dir = tmp_path / "portico"
        portico_dir.mkdir()
        portico = XrtcPortico(portico_dir, smtp, mail={
            "security": "starttls", "username": user, "password": password,
            "ca_file": str(tmp_path / "smtp-cert.pem")})
        address = unique_email("tls")
        key = register(portico, smtp.mailbox, address)
        mail = smtp.mailbox.to(address)[0]
        assert mail.tls, "the e-mail came after STARTTLS"
        assert mail.login == user.encode(), "the e-mail came after AUTH as the configured user"
        assert logins == [user.encode()], "one successful AUTH, no failed one"
        assert login(portico, key).status_code == 200
    finally:
        if portico is not None:
            assert portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"
        smtp.stop()


# --- 3. The sync SDK: payloads round-trip exactly ---

PAYLOADS = [
    # The seed's example payload: JSON, so its quotes travel escaped.
    '{"myapplicationdata":{"sensor":"0001","temperature":"9000"}}',
    # The seed's URL-encoded and Base64 example payloads.
    "%7B%22myapplicationdata%22%3A%7B%22sensor%22%3A%220001%22%2C%22temperature%22%3A%229000%22"
    "%7D%7D",
    "eyJteWFwcGxpY2F0aW9uZGF0YSI6eyJzZW5zb3IiOiIwMDAxIiwidGVtcGVyYXR1cmUiOiI5MDAwIn19",
    # Base64 with "=" padding (and "+" and "/").
    "+/+/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJA==",
    "eHJ0YyE=",
    # Non-ASCII UTF-8 (the SDK sends it as \\u escapes, the emoji as a surrogate pair).
    "Grüße aus Tampere: 温度 23 °C ✓ 🚀",
    # Backslashes, quotes and control characters.
    'line 1\nline 2\t"quoted" \\ back\\slash \\u0041 not an escape',
]


def test_sync_sdk_round_trips_payloads_exactly(portico, smtp, sdk):
    key = register(portico, smtp.mailbox, unique_email("sync"))
    sdk(portico)
    with XRTC(account_id=key.account_id, api_key=key.api_key) as client:
        assert_now_ms(client.login_time)
        for payload in PAYLOADS:
            client.set_item(items=[{"portalid": "roundtrip", "payload": payload}])
            items = list(client.get_item(portals=[{"portalid": "roundtrip"}]))
            assert [item.payload for item in items] == [payload]
            assert items[0].portalid == "roundtrip"
            assert_now_ms(items[0].servertimestamp)


# --- 4. The async SDK: probe, watch and stream ---

def test_async_sdk_probe(fast, smtp, sdk):
    key = register(fast, smtp.mailbox, unique_email("probe"))
    sdk(fast)

    async def main():
        async with AXRTC(account_id=key.account_id, api_key=key.api_key) as client:
            assert_now_ms(client.login_time)
            nothing = await collect(client.get_item(portals=[{"portalid": "empty"}]))
            await client.set_item(items=[{"portalid": "probe", "payload": "async hello"}])
            first = await collect(client.get_item(portals=[{"portalid": "probe"}]))
            again = await collect(client.get_item(portals=[{"portalid": "probe"}]))
            return nothing, first, again

    nothing, first, again = asyncio.run(main())
    assert nothing == []
    assert [(i.portalid, i.payload) for i in first] == [("probe", "async hello")]
    assert_now_ms(first[0].servertimestamp)
    # A probe returns what is new since this session's last get: nothing now.
    assert again == []


def test_async_sdk_watch(fast, smtp, sdk, sent):
    key = register(fast, smtp.mailbox, unique_email("watch"))
    sdk(fast)

    async def main():
        async with AXRTC(account_id=key.account_id, api_key=key.api_key) as client:
            # A watch started before the set returns the item once it is set.
            watch = asyncio.create_task(
                collect(client.get_item(portals=[{"portalid": "watched"}], mode="watch")))
            await sent.wait(GET_PATH, 1)
            assert not watch.done(), "the watch waits while the portal is empty"
            await client.set_item(items=[{"portalid": "watched", "payload": "it is here"}])
            woken = await asyncio.wait_for(watch, GET_ITEM_TIMEOUT + 10)

            # A watch that nothing arrives for returns no item after get_item_timeout_ms.
            began = time.monotonic()
            quiet = await collect(client.get_item(portals=[{"portalid": "quiet"}], mode="watch"))
            return woken, quiet, time.monotonic() - began

    woken, quiet, waited = asyncio.run(main())
    assert [(i.portalid, i.payload) for i in woken] == [("watched", "it is here")]
    assert quiet == []
    assert GET_ITEM_TIMEOUT * 0.9 <= waited < GET_ITEM_TIMEOUT + 2, waited


def test_async_sdk_stream_delivers_in_order_and_ends_on_its_own(fast, smtp, sdk, sent):
    key = register(fast, smtp.mailbox, unique_email("stream"))
    sdk(fast)
    payloads = [f"item {n}" for n in range(1, 6)]

    async def main():
        received, arrival = [], []
        first_arrived = asyncio.Event()
        async with AXRTC(account_id=key.account_id, api_key=key.api_key) as client:
            async def read_stream() -> float:
                async for item in client.get_item(portals=[{"portalid": "flow"}], mode="stream",
                                                  schedule="FIFO"):
                    received.append(item)
                    arrival.append(time.monotonic())
                    first_arrived.set()
                return time.monotonic()

            began = time.monotonic()
            stream = asyncio.create_task(read_stream())
            await sent.wait(GET_PATH, 1)
            await client.set_item(items=[{"portalid": "flow", "payload": payloads[0]}])
            # Once the first item has come down the stream, the stream is certainly open.
            await asyncio.wait_for(first_arrived.wait(), GET_ITEM_TIMEOUT + 10)
            for payload in payloads[1:]:
                await client.set_item(items=[{"portalid": "flow", "payload": payload}])
            ended = await asyncio.wait_for(stream, STREAM_MAX + 10)
        return received, arrival, began, ended

    received, arrival, began, ended = asyncio.run(main())
    assert [i.payload for i in received] == payloads, "every item, in order, on one response"
    assert sent.count(GET_PATH) == 1, "one get request"
    stamps = [i.servertimestamp for i in received]
    assert stamps == sorted(stamps)
    # It ended on its own: get_item_timeout_ms after the last item, within stream_max_ms.
    assert ended - arrival[-1] >= GET_ITEM_TIMEOUT * 0.9, ended - arrival[-1]
    assert ended - began < STREAM_MAX + 1.5, ended - began


def test_async_sdk_stream_ends_at_stream_max(fast, smtp, sdk, sent):
    """Items keep coming (4 Hz, the protocol is about time here), yet the stream ends at
    stream_max_ms."""
    key = register(fast, smtp.mailbox, unique_email("stream-max"))
    sdk(fast)

    async def main():
        received = []
        async with AXRTC(account_id=key.account_id, api_key=key.api_key) as client:
            async def read_stream() -> float:
                async for item in client.get_item(portals=[{"portalid": "busy"}], mode="stream",
                                                  schedule="FIFO"):
                    received.append((item.payload, time.monotonic()))
                return time.monotonic()

            began = time.monotonic()
            stream = asyncio.create_task(read_stream())
            await sent.wait(GET_PATH, 1)
            counter = 0
            while not stream.done() and time.monotonic() - began < STREAM_MAX + 3:
                counter += 1
                await client.set_item(items=[{"portalid": "busy", "payload": f"tick {counter}"}])
                await asyncio.sleep(0.25)
            return received, began, await asyncio.wait_for(stream, 10)

    received, began, ended = asyncio.run(main())
    assert STREAM_MAX * 0.9 <= ended - began < STREAM_MAX + 1.5, ended - began
    assert len(received) >= 8, received
    # Items were still arriving when it ended: it was stream_max_ms, not an idle timeout.
    assert ended - received[-1][1] < GET_ITEM_TIMEOUT, ended - received[-1][1]


# --- 5. The SDK README's latency example ---

def test_readme_latency_example(fast, smtp, sdk):
    """Two API keys on one account; one context sets {"time": ...} at 10 Hz, the other loops
    get_item(mode="watch", cutoff=500), as the README's comments describe it (its code passes
    mode="stream"; streams are tested above). A functional check, not a benchmark."""
    address = unique_email("latency")
    setter_key = register(fast, smtp.mailbox, address)
    getter_key = register(fast, smtp.mailbox, address)
    assert setter_key.account_id == getter_key.account_id
    assert setter_key.api_key != getter_key.api_key
    sdk(fast)
    count = 30
    latencies, counters = [], []
    running = True

    async def setting():
        nonlocal running
        async with AXRTC(account_id=setter_key.account_id, api_key=setter_key.api_key) as client:
            for counter in range(count):
                payload = json.dumps({"time": str(time.time()), "counter": counter})
                await client.set_item(items=[{"portalid": "latency", "payload": payload}])
                await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # as in the README: let all items arrive
        running = False

    async def getting():
        async with AXRTC(account_id=getter_key.account_id, api_key=getter_key.api_key) as client:
            while running:
                async for item in client.get_item(portals=[{"portalid": "latency"}],
                                                  mode="watch", cutoff=500):
                    data = json.loads(item.payload)
                    latencies.append(round((time.time() - float(data["time"])) * 1000, 1))
                    counters.append(data["counter"])

    async def execute():
        await asyncio.gather(setting(), getting())

    AXRTC.run(execute())
    assert len(counters) == len(set(counters)), f"an item came twice: {counters}"
    assert len(counters) >= count * 0.8, f"{len(counters)} of {count} items arrived"
    assert all(0 < latency < 1000 for latency in latencies), latencies


# --- 6. The seed's curl examples ---

# Copied verbatim from the seed ("Use with CURL"); only the placeholders and the host change.
SEED_LOGIN = r'curl -c cookies.txt -d "{\"accountid\":"AC****",\"apikey\":\"****\"}" https://api.xrtc.org/v1/auth/login'  # noqa: E501
SEED_GET = r'curl -b cookies.txt -d "{portals:[{\"portalid\":\"send\",\"servertimestamp\":1664548042272}]}" https://api.xrtc.org/v1/item/get'  # noqa: E501
SEED_SET = r'curl -b cookies.txt -d "{items:[{\"portalid\":\"send\",\"payload\":\"23658abc\"}]}" https://api.xrtc.org/v1/item/set'  # noqa: E501
SEED_UPLOAD = r"curl -b cookies.txt -d @test.txt https://api.xrtc.org/v1/item/set"
# A file for the upload: the seed's "Escaped example payload" as an item (curl -d @file drops
# the newlines).
TEST_TXT = r'''{items:[{"portalid":"send",
"payload":"{\"myapplicationdata\":{\"sensor\":\"0001\",\"temperature\":\"9000\"}}"}]}
'''


def test_the_seeds_curl_examples(tmp_path, smtp):
    portico_dir = tmp_path / "portico"
    portico_dir.mkdir()
    portico = XrtcPortico(portico_dir, smtp, tls=False)
    try:
        key = register(portico, smtp.mailbox, unique_email("curl"))
        work = tmp_path / "curl"
        work.mkdir()
        (work / "test.txt").write_text(TEST_TXT)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}

        def curl(example: str) -> dict:
            command = example.replace("https://api.xrtc.org", f"http://localhost:{portico.port}")
            done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, f"{command}\n{done.stderr}"
            return json.loads(done.stdout)

        # The shell quoting leaves the account id unquoted in the JSON: Portico accepts it.
        logged = curl(SEED_LOGIN.replace("AC****", key.account_id).replace("****", key.api_key))
        assert_now_ms(logged["servertimestamp"])
        jar = (work / "cookies.txt").read_text()
        session_cookie = [line for line in jar.splitlines() if "\tJSESSIONID\t" in line]
        assert len(session_cookie) == 1, jar
        assert session_cookie[0].startswith("#HttpOnly_localhost\t"), session_cookie

        stored = curl(SEED_SET)
        assert_now_ms(stored["servertimestamp"])
        got = curl(SEED_GET)
        assert got == {"items": [{"portalid": "send", "payload": "23658abc",
                                  "servertimestamp": stored["servertimestamp"]}]}

        uploaded = curl(SEED_UPLOAD)
        assert_now_ms(uploaded["servertimestamp"])
        got = curl(SEED_GET)
        assert {"portalid": "send",
                "payload": '{"myapplicationdata":{"sensor":"0001","temperature":"9000"}}',
                "servertimestamp": uploaded["servertimestamp"]} in got["items"], got
    finally:
        assert portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"


# --- 7. Accounts are isolated ---

def test_an_account_cannot_read_another_accounts_portal(portico, smtp):
    alice = logged_in(portico, register(portico, smtp.mailbox, unique_email("alice")))
    bob = logged_in(portico, register(portico, smtp.mailbox, unique_email("bob")))

    stored = portico.post("/v1/item/set",
                          {"items": [{"portalid": "shared", "payload": "alice's secret"}]}, alice)
    assert stored.status_code == 200, stored.text

    for portals in ([{"portalid": "shared"}], [], None):
        seen = portico.post(GET_PATH, {"portals": portals}, bob)
        assert seen.status_code == 200, seen.text
        assert seen.json().get("items") in (None, []), (portals, seen.text)

    # Bob's own portal of that name is his, and Alice still reads only hers.
    assert portico.post("/v1/item/set",
                        {"items": [{"portalid": "shared", "payload": "bob's"}]}, bob).ok
    mine = portico.post(GET_PATH, {"portals": [{"portalid": "shared"}]}, alice)
    assert [i["payload"] for i in mine.json()["items"]] == ["alice's secret"]
    theirs = portico.post(GET_PATH, {"portals": [{"portalid": "shared"}]}, bob)
    assert [i["payload"] for i in theirs.json()["items"]] == ["bob's"]
