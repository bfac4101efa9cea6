"""`value.received` webhooks checked against the Tributech node seed (tributech-node-api.txt,
"Webhooks", ValueReceivedEvent) by a receiver written by others: a real HTTP receiver (the
standard library's http.server, in a thread) records every POST Portico makes, and

- every delivery's Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
  `webhook-signature`) is verified by the `standardwebhooks` package's
  `Webhook(secret).verify(body, headers)` with the `whsec_…` secret the subscription was created
  with (and refused with another secret);
- every body is parsed by Python's `json` with `object_pairs_hook`, so member order and
  duplicates are seen, and must be the seed's payload exactly: the members `StreamId`,
  `Timestamp`, `Value`, `EventQoS` in that order, the stream's id, the written instant written
  as the seed's example writes it (`2023-06-16T05:08:40.991585+00:00`), the value's bytes as a
  JSON array of integers 0-255, and `EventQoS` 1;
- the expected bytes come from Python's `struct` (`<d` for DOUBLE, `<f` for FLOAT: .NET's
  `BitConverter` on a little-endian machine), checked first against the README's examples
  (DOUBLE 2.3 is `ZmZmZmZmAkA=`, FLOAT 16.5 is `AACEQQ==`), never from what Portico answers.

Values are written through the native API (`POST /api/v1/streams/{id}/values`, timestamps in
`Z` and in other offsets) and the Tributech one (`POST /demeter/api/values/{double,float}`);
each value written is delivered once, with one event id.

Streams are created and written with a client-credentials token of a `portico:admin` client;
the subscription is made with one of a client that has only the `portico:webhooks` role (which
the streams' default `read` policy, `authenticated`, lets read the values).
"""

import base64
import datetime
import json
import os
import pathlib
import re
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from standardwebhooks import Webhook, WebhookVerificationError

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOPIC = "value.received"
SEED_KEYS = ["StreamId", "Timestamp", "Value", "EventQoS"]
# The seed's payload example writes "Timestamp": "2023-06-16T05:08:40.991585+00:00".
SEED_TIMESTAMP = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00\Z")
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
WAIT_SECONDS = 30
PACKING = {"DOUBLE": "<d", "FLOAT": "<f"}


def micros_of(moment: datetime.datetime) -> int:
    return (moment - EPOCH) // datetime.timedelta(microseconds=1)


def little_endian(encoding: str, value: float) -> bytes:
    """The value's bytes as .NET's `BitConverter` writes them (little-endian)."""
    return struct.pack(PACKING[encoding], value)


def ordered_json(body: bytes) -> list:
    """The body's top-level object as its (name, value) pairs in the order written; nested
    objects (there should be none) stay pairs too."""
    return json.loads(body, object_pairs_hook=list)


class Value:
    """One value this test writes: where, the timestamp text sent, the instant it names, the
    number sent and the bytes it must arrive as."""

    def __init__(self, route: str, encoding: str, text: str, instant: datetime.datetime,
                 number: float):
        self.route = route  # "native" or the Tributech type ("double", "float")
        self.encoding = encoding
        self.text = text
        self.instant = instant
        self.number = number
        self.bytes = little_endian(encoding, number)
        self.stream_id = None  # set once the stream exists

    def key(self) -> tuple:
        return self.stream_id, micros_of(self.instant)

    def __repr__(self):
        return f"{self.number!r} at {self.text} ({self.route}, {self.encoding})"


def at(hour, minute, second, micro=0) -> datetime.datetime:
    return datetime.datetime(2026, 3, 1, hour, minute, second, micro, tzinfo=UTC)


# What is written, in order; the texts use several offsets, the instants are what they name.
VALUES = [
    Value("native", "DOUBLE", "2026-03-01T10:00:00.000001Z", at(10, 0, 0, 1), 2.3),
    Value("native", "DOUBLE", "2026-03-01T11:00:00.123456+01:00", at(10, 0, 0, 123456), -21.5),
    Value("native", "DOUBLE", "2026-03-01T10:00:01Z", at(10, 0, 1), 6.02214076e23),
    Value("double", "DOUBLE", "2026-03-01T04:30:02.500000-05:30", at(10, 0, 2, 500000), 98.6),
    Value("float", "FLOAT", "2026-03-01T10:00:03.000007Z", at(10, 0, 3, 7), 16.5),
]


# --- The receiver ---

class Delivery:
    def __init__(self, path: str, headers: dict, body: bytes):
        self.path = path
        self.headers = headers  # lower-cased names
        self.body = body

    def key(self) -> tuple | None:
        """(StreamId, microseconds of Timestamp), or None for a body that does not say."""
        try:
            body = json.loads(self.body)
            moment = datetime.datetime.fromisoformat(body["Timestamp"])
            return body["StreamId"], micros_of(moment)
        except (ValueError, KeyError, TypeError):
            return None

    def __repr__(self):
        return f"<{self.path} {self.headers.get('x-tributech-event')} {self.body!r}>"


class Receiver:
    """Answers every POST with 200 and records it (path, headers, exact body bytes)."""

    def __init__(self):
        self.deliveries: list[Delivery] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.changed:
                    receiver.deliveries.append(Delivery(self.path, headers, body))
                    receiver.changed.notify_all()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for_all(self, path: str, keys: list, timeout: float = WAIT_SECONDS) -> dict:
        """Waits until every (stream, micros) of `keys` has a delivery to `path`; answers the
        deliveries to `path` of each key."""
        def by_key():
            found = {key: [] for key in keys}
            for delivery in self.deliveries:
                if delivery.path == path and delivery.key() in found:
                    found[delivery.key()].append(delivery)
            return found

        with self.changed:
            complete = self.changed.wait_for(lambda: all(by_key().values()), timeout)
            found = by_key()
            assert complete, (
                f"no delivery within {timeout} s of "
                f"{[key for key, got in found.items() if not got]}; "
                f"received: {self.deliveries}")
            return found

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- Portico with webhooks to loopback ---

class World:
    def __init__(self, tmp: pathlib.Path, binary: str):
        self.binary = binary
        self.data_dir = tmp / "data"
        config = tmp / "portico.toml"
        config.write_text(tokenkit.toml_section("webhooks", {"allow_targets": ["127.0.0.0/8"],
                                                             "poll_ms": 50}))
        self.portico = tokenkit.Portico(binary, str(config), str(self.data_dir),
                                        str(tmp / "portico.log"))
        self.url = self.portico.url
        self.admin = self.client_credentials_token("value-admin", "portico:admin")
        self.hooks = self.client_credentials_token("value-hooks", "portico:webhooks")

    def client_credentials_token(self, client_id: str, *roles: str) -> str:
        return tokenkit.client_credentials_token(self.binary, self.data_dir, self.url,
                                                 self.portico.cert, client_id, *roles)

    def api(self, token: str, method: str, path: str, body=None) -> requests.Response:
        return requests.request(method, self.url + path, json=body, verify=self.portico.cert,
                                timeout=30, headers={"Authorization": f"Bearer {token}"})

    def create_stream(self, encoding: str) -> str:
        reply = self.api(self.admin, "POST", "/api/v1/streams",
                         {"name": f"value events {encoding}", "encoding": encoding})
        assert reply.status_code == 201, reply.text
        stream_id = reply.json()["id"]
        assert str(uuid.UUID(stream_id)) == stream_id, f"not a lowercase UUID: {stream_id!r}"
        return stream_id

    def write(self, values: list) -> None:
        """Writes each value by its route: the native API or the Tributech one."""
        for value in values:
            if value.route == "native":
                reply = self.api(self.admin, "POST", f"/api/v1/streams/{value.stream_id}/values",
                                 [{"timestamp": value.text, "value": value.number}])
            else:
                reply = self.api(self.admin, "POST", f"/demeter/api/values/{value.route}",
                                 [{"streamId": value.stream_id, "timestamp": value.text,
                                   "value": value.number}])
            assert reply.status_code == 200, f"{value}: {reply.status_code} {reply.text}"
            assert reply.json() == {"insertedCount": 1}, reply.text


class Subscription:
    def __init__(self, created: dict, path: str):
        self.id = created["id"]
        self.secret = created["secret"]
        self.created = created
        self.path = path


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("value-events"), binary)
    yield world
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"
    world.portico.process.stdout.close()


@pytest.fixture(scope="module")
def subscription(world, receiver):
    """A `value.received` subscription with Standard Webhooks headers."""
    path = "/hook/values"
    reply = world.api(world.hooks, "POST", "/api/v1/webhooks/subscriptions",
                      {"url": receiver.url + path, "topics": [TOPIC],
                       "options": {"standard_webhooks": True}})
    assert reply.status_code == 201, reply.text
    created = reply.json()
    assert created["topics"] == [TOPIC], created
    return Subscription(created, path)


@pytest.fixture(scope="module")
def delivered(world, receiver, subscription):
    """Creates a DOUBLE and a FLOAT stream, writes VALUES (after subscribing), and answers the
    deliveries of each value: [(value, [delivery, …])]."""
    streams = {encoding: world.create_stream(encoding) for encoding in PACKING}
    for value in VALUES:
        value.stream_id = streams[value.encoding]
    world.write(VALUES)
    found = receiver.wait_for_all(subscription.path, [value.key() for value in VALUES])
    return [(value, found[value.key()]) for value in VALUES]


def every_delivery(delivered):
    for value, deliveries in delivered:
        for delivery in deliveries:
            yield value, delivery


# --- The test's own expectations ---

def test_little_endian_bytes_match_the_readme_examples():
    assert base64.b64encode(little_endian("DOUBLE", 2.3)).decode() == "ZmZmZmZmAkA="
    assert base64.b64encode(little_endian("FLOAT", 16.5)).decode() == "AACEQQ=="
    assert ordered_json(b'{"b":1,"a":2}') == [("b", 1), ("a", 2)]


def test_written_texts_name_the_expected_instants():
    for value in VALUES:
        assert datetime.datetime.fromisoformat(value.text) == value.instant, value


# --- The topic ---

def test_topics_list_value_received_as_value_received_event_with_qos_1(world):
    reply = world.api(world.hooks, "GET", "/api/v1/webhooks/topics")
    assert reply.status_code == 200, reply.text
    topics = {topic["name"]: topic for topic in reply.json()}
    assert TOPIC in topics, sorted(topics)
    assert topics[TOPIC]["event"] == "ValueReceivedEvent", topics[TOPIC]
    assert topics[TOPIC]["qos"] == 1, topics[TOPIC]


# --- Deliveries ---

def test_one_delivery_per_value_written(delivered, receiver, subscription):
    for value, deliveries in delivered:
        event_ids = {d.headers.get("x-tributech-eventid") for d in deliveries}
        assert len(deliveries) == 1 and len(event_ids) == 1, \
            f"{value}: {len(deliveries)} deliveries, event ids {event_ids}"
    with receiver.changed:
        received = [d for d in receiver.deliveries if d.path == subscription.path]
    assert len(received) == len(VALUES), \
        f"{len(VALUES)} values written, {len(received)} deliveries: {received}"
    event_ids = [d.headers["x-tributech-eventid"] for _, d in every_delivery(delivered)]
    assert len(set(event_ids)) == len(VALUES), f"event ids shared between values: {event_ids}"


def test_deliveries_are_value_received_events(delivered):
    for value, delivery in every_delivery(delivered):
        assert delivery.headers.get("x-tributech-event") == "ValueReceivedEvent", \
            f"{value}: x-tributech-event is {delivery.headers.get('x-tributech-event')!r}"
        assert delivery.headers["content-type"].split(";")[0].strip() == "application/json", \
            delivery.headers["content-type"]


def test_standard_webhooks_library_verifies_every_delivery(delivered, subscription):
    wrong = "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")
    for value, delivery in every_delivery(delivered):
        try:
            payload = Webhook(subscription.secret).verify(delivery.body, delivery.headers)
        except WebhookVerificationError as error:
            raise AssertionError(f"{value}: does not verify with the subscription's secret "
                                 f"({error}): {delivery}") from error
        assert payload == json.loads(delivery.body)
        with pytest.raises(WebhookVerificationError):
            Webhook(wrong).verify(delivery.body, delivery.headers)


def test_body_members_are_the_seeds_in_order(delivered):
    for value, delivery in every_delivery(delivered):
        pairs = ordered_json(delivery.body)
        assert isinstance(pairs, list) and all(isinstance(p, tuple) for p in pairs), \
            f"{value}: not a JSON object: {delivery.body!r}"
        assert [name for name, _ in pairs] == SEED_KEYS, \
            f"{value}: members {[name for name, _ in pairs]}, expected {SEED_KEYS}"


def test_stream_id_is_the_streams(delivered):
    for value, delivery in every_delivery(delivered):
        body = dict(ordered_json(delivery.body))
        assert body["StreamId"] == value.stream_id, \
            f"{value}: StreamId {body['StreamId']!r}, expected {value.stream_id!r}"


def test_value_is_the_little_endian_bytes_as_integers(delivered):
    for value, delivery in every_delivery(delivered):
        sent = dict(ordered_json(delivery.body))["Value"]
        assert isinstance(sent, list) and all(type(b) is int and 0 <= b <= 255 for b in sent), \
            f"{value}: Value is not an array of integers 0-255: {sent!r}"
        assert sent == list(value.bytes), \
            f"{value}: Value {sent}, expected {list(value.bytes)} " \
            f"(base64 {base64.b64encode(value.bytes).decode()})"


def test_event_qos_is_1(delivered):
    for value, delivery in every_delivery(delivered):
        qos = dict(ordered_json(delivery.body))["EventQoS"]
        assert type(qos) is int and qos == 1, f"{value}: EventQoS {qos!r}"


def test_timestamp_is_the_written_instant_written_as_the_seed_writes_it(delivered):
    for value, delivery in every_delivery(delivered):
        text = dict(ordered_json(delivery.body))["Timestamp"]
        assert SEED_TIMESTAMP.match(text), \
            f"{value}: Timestamp {text!r} is not written like the seed's " \
            f"'2023-06-16T05:08:40.991585+00:00'"
        assert datetime.datetime.fromisoformat(text) == value.instant, \
            f"{value}: Timestamp {text!r}, expected {value.instant.isoformat()}"
