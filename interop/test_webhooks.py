"""Webhook deliveries checked by receivers written by others: a real HTTP receiver (the standard
library's http.server, in a thread) records every POST Portico makes, and each delivery is
verified twice:

- the Tributech signature (`x-tributech-signature`), by `hash_hmac` below: our own
  implementation written from the C# `HashHMAC` in the seed (tributech-node-api.txt, "Webhooks",
  "Signature Code Example"), step by step: HMAC-SHA256 keyed with the ASCII bytes of the secret,
  over the ASCII bytes of the payload JSON text followed by the ASCII bytes of the signature
  timestamp's `ToString(CultureInfo.InvariantCulture)` (the `x-tributech-signaturetimestamp`
  header, `MM/dd/yyyy HH:mm:ss +00:00`), written as uppercase hex without dashes, after `sha256=`;
- the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`), by
  the `standardwebhooks` package's `Webhook(secret).verify(body, headers)`, for a subscription
  created with `options.standard_webhooks`.

Both take the `whsec_…` secret Portico returns as it is. Both must refuse a body changed by one
byte, a wrong secret, and the same JSON value re-serialized by Python (other bytes). The headers
the seed lists are checked too, and the body is ASCII with a written "Grüße" escaped as `\\uXXXX`.

The subscriptions are managed with a client-credentials token of a client that has only the
`portico:webhooks` role, created with `portico admin client create` on the data directory.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import pathlib
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from standardwebhooks import Webhook, WebhookVerificationError

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEXT_ENDPOINT = "/api/v1/t/text"
GREETING = "Grüße"
# .NET's DateTimeOffset.ToString(CultureInfo.InvariantCulture) of a UTC time.
DOTNET_UTC = re.compile(r"\A\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2} \+00:00\Z")
UPPER_HEX_SHA256 = re.compile(r"\Asha256=[0-9A-F]{64}\Z")


# --- The seed's HashHMAC, in Python ---

def dotnet_ascii(text: str) -> bytes:
    """`new System.Text.ASCIIEncoding().GetBytes(text)`: .NET replaces what is not ASCII with
    '?' (it does not throw), so a non-ASCII body would be signed lossily; Portico escapes."""
    return text.encode("ascii", errors="replace")


def hash_hmac(secret: str, web_hook_payload_json: str, signature_timestamp: str) -> str:
    """The seed's C# `HashHMAC(secret, webHookPayloadJson, signatureTimestamp)`, where
    `signature_timestamp` is already `signatureTimestamp.ToString(CultureInfo.InvariantCulture)`
    (the text of the `x-tributech-signaturetimestamp` header)."""
    message_hash = hmac.new(dotnet_ascii(secret), digestmod=hashlib.sha256)  # new HMACSHA256(…)
    payload = dotnet_ascii(web_hook_payload_json) + dotnet_ascii(signature_timestamp)  # .Concat
    message_hash.update(payload)
    signature = message_hash.digest()  # ComputeHash(payload)
    # BitConverter.ToString: uppercase hex pairs joined by '-'; then .Replace("-", "").
    return "-".join(f"{byte:02X}" for byte in signature).replace("-", "")


def tributech_verifies(secret: str, headers: dict, body: bytes) -> bool:
    """Whether one of the `sha256=…` values of `x-tributech-signature` (comma-separated while a
    rotated-out secret still signs) is `HashHMAC` of the body text and the signature timestamp."""
    expected = "sha256=" + hash_hmac(secret, body.decode("utf-8"),
                                     headers["x-tributech-signaturetimestamp"])
    return any(hmac.compare_digest(expected, value.strip())
               for value in headers["x-tributech-signature"].split(","))


def standard_verifies(secret: str, headers: dict, body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def dotnet_time(text: str) -> datetime.datetime:
    """A `MM/dd/yyyy HH:mm:ss +00:00` header as an aware UTC datetime."""
    assert DOTNET_UTC.match(text), f"not .NET's invariant UTC format: {text!r}"
    parsed = datetime.datetime.strptime(text, "%m/%d/%Y %H:%M:%S %z")
    assert parsed.utcoffset() == datetime.timedelta(0)
    return parsed


def assert_between(moment: datetime.datetime, start: float, end: float) -> None:
    """`moment` (whole seconds) lies in [start, end] (Unix times), allowing the truncation."""
    seconds = moment.timestamp()
    assert int(start) - 1 <= seconds <= end + 1, \
        f"{moment.isoformat()} is not between {start} and {end}"


# --- The receiver ---

class Delivery:
    def __init__(self, path: str, headers: dict, header_names: list, body: bytes):
        self.path = path
        self.headers = headers  # lower-cased names
        self.header_names = header_names
        self.body = body
        self.received = time.time()

    def json(self):
        return json.loads(self.body)


class Receiver:
    """Answers every POST with 200 and records it (path, headers, exact body bytes)."""

    def __init__(self):
        self.deliveries: list[Delivery] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                names = [name.lower() for name in self.headers.keys()]
                headers = {name.lower(): value for name, value in self.headers.items()}
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.changed:
                    receiver.deliveries.append(Delivery(self.path, headers, names, body))
                    receiver.changed.notify_all()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, path: str, value, timeout: float = 30) -> Delivery:
        """The first delivery to `path` whose body's Value is `value`."""
        def found():
            return next((d for d in self.deliveries
                         if d.path == path and d.json().get("Value") == value), None)
        with self.changed:
            assert self.changed.wait_for(found, timeout), \
                f"no delivery of {value!r} to {path} within {timeout} s: {self.deliveries}"
            return found()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- Portico with a writable text datapoint and webhooks to loopback ---

class World:
    def __init__(self, tmp: pathlib.Path, binary: str):
        self.binary = binary
        self.data_dir = tmp / "data"
        config = tmp / "portico.toml"
        config.write_text(
            tokenkit.toml_table("datapoint", {"key": "t.text", "type": "string"})
            + tokenkit.toml_table("endpoint", {"path": TEXT_ENDPOINT, "datapoint": "t.text"})
            + tokenkit.toml_section("webhooks", {"allow_targets": ["127.0.0.0/8"],
                                                 "poll_ms": 50}))
        self.portico = tokenkit.Portico(binary, str(config), str(self.data_dir),
                                        str(tmp / "portico.log"))
        self.url = self.portico.url
        self.token = self.client_credentials_token("webhook-manager", "portico:webhooks")

    def client_credentials_token(self, client_id: str, *roles: str) -> str:
        return tokenkit.client_credentials_token(self.binary, self.data_dir, self.url,
                                                 self.portico.cert, client_id, *roles)

    def api(self, method: str, path: str, body=None) -> requests.Response:
        return requests.request(method, self.url + path, json=body, verify=self.portico.cert,
                                timeout=30, headers={"Authorization": f"Bearer {self.token}"})

    def write_text(self, value: str) -> None:
        """PUT the value as UTF-8 JSON (not `requests`' json=, which would escape it already),
        so the escaping in the delivery is Portico's own."""
        body = json.dumps({"value": value}, ensure_ascii=False).encode("utf-8")
        reply = requests.put(self.url + TEXT_ENDPOINT, data=body, verify=self.portico.cert,
                             timeout=30, headers={"Content-Type": "application/json"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["value"] == value


class Subscription:
    def __init__(self, created: dict, path: str):
        self.id = created["id"]
        self.secret = created["secret"]
        self.created = created
        self.path = path


class Written:
    """One write of GREETING and its delivery to each subscription."""

    def __init__(self, before: float, after: float, standard: Delivery, plain: Delivery):
        self.before = before
        self.after = after
        self.standard = standard
        self.plain = plain


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("webhooks"), binary)
    yield world
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"
    world.portico.process.stdout.close()


def subscribe(world: World, receiver: Receiver, path: str, options: dict) -> Subscription:
    reply = world.api("POST", "/api/v1/webhooks/subscriptions",
                      {"url": receiver.url + path, "topics": ["datapoint.written"],
                       "options": options})
    assert reply.status_code == 201, reply.text
    return Subscription(reply.json(), path)


@pytest.fixture(scope="module")
def standard(world, receiver):
    """A subscription with Standard Webhooks headers."""
    return subscribe(world, receiver, "/hook/standard", {"standard_webhooks": True})


@pytest.fixture(scope="module")
def plain(world, receiver):
    """A subscription with the Tributech headers only (the default)."""
    return subscribe(world, receiver, "/hook/plain", {})


@pytest.fixture(scope="module")
def written(world, receiver, standard, plain):
    before = time.time()
    world.write_text(GREETING)
    after = time.time()
    return Written(before, after, receiver.wait_for(standard.path, GREETING),
                   receiver.wait_for(plain.path, GREETING))


def one_byte_changed(body: bytes) -> bytes:
    """The body with the `t` of the datapoint's key made a `T`."""
    tampered = body.replace(b'"t.text"', b'"T.text"', 1)
    assert len(tampered) == len(body)
    assert sum(a != b for a, b in zip(tampered, body)) == 1
    return tampered


def random_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


# --- The API ---

def test_topics_list_datapoint_written_as_datapoint_written_event(world):
    reply = world.api("GET", "/api/v1/webhooks/topics")
    assert reply.status_code == 200, reply.text
    topics = {topic["name"]: topic for topic in reply.json()}
    assert topics["datapoint.written"]["event"] == "DatapointWrittenEvent"
    assert topics["datapoint.written"]["qos"] in (1, 2)


def test_created_subscription_returns_a_whsec_base64_secret_once(world, standard, plain):
    for subscription in (standard, plain):
        secret = subscription.secret
        assert secret.startswith("whsec_") and secret.isascii(), secret
        assert len(base64.b64decode(secret[len("whsec_"):], validate=True)) == 32
    assert standard.secret != plain.secret
    assert standard.created["options"]["standard_webhooks"] is True
    assert plain.created["options"]["standard_webhooks"] is False
    again = world.api("GET", f"/api/v1/webhooks/subscriptions/{standard.id}")
    assert again.status_code == 200, again.text
    assert "secret" not in again.json() and standard.secret not in again.text


# --- The Tributech signature (the seed's HashHMAC) ---

def test_seeds_hash_hmac_matches_its_specification():
    """hash_hmac itself, against a value computed independently of it (the same one Portico's
    unit test uses): HMAC-SHA256(b"secret", b'{"a":1}' + b"06/16/2023 05:08:46 +00:00")."""
    assert hash_hmac("secret", '{"a":1}', "06/16/2023 05:08:46 +00:00") == \
        "EED14E8319B3267DB3A1716B8B03503E229D49AA5E873F97099611E65C52B58B"
    assert hash_hmac("secret", '{"a":1}', "06/16/2023 05:08:46 +00:00") == hmac.new(
        b"secret", b'{"a":1}06/16/2023 05:08:46 +00:00', hashlib.sha256).hexdigest().upper()


def test_tributech_signature_verifies_with_the_seeds_hash_hmac(written, standard, plain):
    for delivery, subscription in ((written.standard, standard), (written.plain, plain)):
        assert UPPER_HEX_SHA256.match(delivery.headers["x-tributech-signature"]), \
            delivery.headers["x-tributech-signature"]
        assert tributech_verifies(subscription.secret, delivery.headers, delivery.body)


def test_signature_timestamp_is_dotnet_invariant_utc_near_now(written):
    for delivery in (written.standard, written.plain):
        signed = dotnet_time(delivery.headers["x-tributech-signaturetimestamp"])
        assert_between(signed, written.before, delivery.received)


# --- Standard Webhooks ---

def test_standard_webhooks_library_verifies_the_delivery(written, standard):
    payload = Webhook(standard.secret).verify(written.standard.body, written.standard.headers)
    assert payload == written.standard.json()
    assert payload["Value"] == GREETING


def test_standard_webhooks_headers_only_when_opted_in(written):
    standard_headers = {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert standard_headers <= set(written.standard.headers)
    assert not standard_headers & set(written.plain.headers)
    headers = written.standard.headers
    assert headers["webhook-id"] == headers["x-tributech-eventid"]
    assert re.fullmatch(r"[0-9]+", headers["webhook-timestamp"]), headers["webhook-timestamp"]
    sent = datetime.datetime.fromtimestamp(int(headers["webhook-timestamp"]),
                                           datetime.timezone.utc)
    assert_between(sent, written.before, written.standard.received)
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", headers["webhook-signature"]), \
        headers["webhook-signature"]


# --- Both verifiers refuse what was not signed ---

def test_tampered_body_fails_both_verifiers(written, standard):
    delivery = written.standard
    tampered = one_byte_changed(delivery.body)
    assert not tributech_verifies(standard.secret, delivery.headers, tampered)
    assert not standard_verifies(standard.secret, delivery.headers, tampered)


def test_wrong_secret_fails_both_verifiers(written, standard, plain):
    delivery = written.standard
    for wrong in (random_secret(), plain.secret):
        assert not tributech_verifies(wrong, delivery.headers, delivery.body)
        assert not standard_verifies(wrong, delivery.headers, delivery.body)
    assert not tributech_verifies(standard.secret, written.plain.headers, written.plain.body)


def test_reserialized_body_fails_both_verifiers(written, standard):
    """The same JSON value as Python writes it (spaces after ':' and ','): other bytes, so
    neither signature holds; a receiver must verify the raw body before parsing it."""
    delivery = written.standard
    reserialized = json.dumps(json.loads(delivery.body)).encode("ascii")
    assert reserialized != delivery.body
    assert json.loads(reserialized) == delivery.json()
    assert not tributech_verifies(standard.secret, delivery.headers, reserialized)
    assert not standard_verifies(standard.secret, delivery.headers, reserialized)


# --- The other headers and the body ---

def test_tributech_headers_of_a_datapoint_write(world, written):
    qos = {t["name"]: t["qos"] for t in world.api("GET", "/api/v1/webhooks/topics").json()}
    for delivery in (written.standard, written.plain):
        headers = delivery.headers
        assert len(delivery.header_names) == len(set(delivery.header_names)), \
            f"a header repeated: {delivery.header_names}"
        assert headers["content-type"].split(";")[0].strip() == "application/json"
        assert headers["x-tributech-event"] == "DatapointWrittenEvent"
        event_id = headers["x-tributech-eventid"]
        assert str(uuid.UUID(event_id)) == event_id.lower()
        assert headers["x-tributech-correlationid"].strip()
        event_time = dotnet_time(headers["x-tributech-timestamp"])
        assert_between(event_time, written.before, written.after)
        body = delivery.json()
        assert body["Datapoint"] == "t.text"
        assert body["EventQoS"] == qos["datapoint.written"]
        # The event time is the write's time, to the second.
        stamped = datetime.datetime.fromisoformat(body["Timestamp"].replace("Z", "+00:00"))
        assert event_time == stamped.replace(microsecond=0)


def test_body_is_ascii_with_non_ascii_escaped(written):
    for delivery in (written.standard, written.plain):
        body = delivery.body
        assert body.isascii(), body
        assert b"\\u00fc" in body and b"\\u00df" in body, body
        assert delivery.json()["Value"] == GREETING
        assert b" " not in body, "compact JSON expected"


# --- Rotation: both secrets sign during the overlap ---

def test_rotated_secret_and_old_secret_both_sign(world, receiver, standard, written):
    """After a rotation every delivery still verifies with the old secret (the overlap), and
    once the dispatcher has the new secret (it re-reads subscriptions every poll_ms, so the
    first deliveries after the rotation may still carry the old signature alone) both headers
    carry two signatures, the new secret's first, each verifying with its own secret."""
    reply = world.api("POST", f"/api/v1/webhooks/subscriptions/{standard.id}/secret")
    assert reply.status_code == 200, reply.text
    new_secret = reply.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != standard.secret
    deadline = time.monotonic() + 30
    for attempt in range(1000):
        value = f"{GREETING} (rotated {attempt})"
        world.write_text(value)
        delivery = receiver.wait_for(standard.path, value)
        assert tributech_verifies(standard.secret, delivery.headers, delivery.body)
        assert standard_verifies(standard.secret, delivery.headers, delivery.body)
        tributech = delivery.headers["x-tributech-signature"].split(",")
        if len(tributech) > 1 or time.monotonic() > deadline:
            break
    assert len(tributech) == 2 and all(UPPER_HEX_SHA256.match(v) for v in tributech), tributech
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    for secret in (new_secret, standard.secret):
        assert tributech_verifies(secret, delivery.headers, delivery.body)
        assert standard_verifies(secret, delivery.headers, delivery.body)
    assert not tributech_verifies(random_secret(), delivery.headers, delivery.body)
    assert not standard_verifies(random_secret(), delivery.headers, delivery.body)
    expected = "sha256=" + hash_hmac(new_secret, delivery.body.decode("utf-8"),
                                     delivery.headers["x-tributech-signaturetimestamp"])
    assert tributech[0] == expected, "the newest secret's signature comes first"
    # A receiver comparing the whole header with one "sha256=" + HashHMAC, as the seed's example
    # invites, does not match while both secrets sign: it must split at the commas.
    assert delivery.headers["x-tributech-signature"] != expected
