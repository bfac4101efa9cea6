"""Schemathesis, a property-based API tester written by others, over Portico's whole OpenAPI
document (`/api/openapi.json`): every operation, once each with an admin token, a webhooks
token, an XRTC session and no credentials, checking that no answer is a server error and that
every answer's status, media type and body (each Server-Sent Event's too) is one the document
gives for that operation."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import requests

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
# Event streams and XRTC waits end within a second, so every generated case that opens one
# gets its whole answer, which Schemathesis then checks.
# The XRTC key's request rate is lifted so the session's run reaches the handlers rather than
# the rate limit (whose answer is documented too).
OVERRIDES = {
    "PORTICO_LIMITS__STREAM_MAX_SECONDS": "1",
    "PORTICO_XRTC__GET_ITEM_TIMEOUT_MS": "200",
    "PORTICO_XRTC__STREAM_MAX_MS": "1000",
    "PORTICO_XRTC__REQUESTS_PER_SECOND": "100000",
}


class Node:
    """`portico serve` on the example configuration, with credentials of every kind."""

    def __init__(self, tmp: pathlib.Path, binary: str):
        self.binary = binary
        self.data_dir = tmp / "data"
        self.portico = tokenkit.Portico(binary, str(ROOT / "portico.example.toml"),
                                        str(self.data_dir), str(tmp / "portico.log"),
                                        overrides=OVERRIDES)
        self.url = self.portico.url
        self.cert = self.portico.cert
        # Registered before any run, whose generated registrations could use up this address's.
        self.xrtc_key = self.register_xrtc()

    def token(self, client_id: str, role: str) -> str:
        """A client-credentials token of a new client of the admin realm with `role`."""
        return tokenkit.client_credentials_token(self.binary, self.data_dir, self.url, self.cert,
                                                 client_id, role)

    def post(self, path: str, body, **options) -> requests.Response:
        return requests.post(self.url + path, json=body, verify=self.cert, timeout=30, **options)

    def register_xrtc(self) -> dict:
        """An XRTC account and key, registered with the code from the outbox."""
        post = self.post
        started = post("/v1/auth/registrationstart", {"email": "schemathesis@example.com"})
        assert started.status_code == 200, started.text
        mails = list((self.data_dir / "outbox").iterdir())
        assert len(mails) == 1, mails
        codes = re.findall(r"^\s*(\d{6})\s*$", mails[0].read_text(), re.MULTILINE)
        assert codes, "no code on a line of its own in the outbox mail"
        done = post("/v1/auth/registrationcode",
                    {"registrationtoken": started.json()["registrationtoken"],
                     "emailcode": codes[0]})
        assert done.status_code == 200, done.text
        return done.json()

    def xrtc_session(self) -> str:
        """A `JSESSIONID` for the XRTC key."""
        key = self.xrtc_key
        login = self.post("/v1/auth/login",
                          {"accountid": key["accountid"], "apikey": key["apikey"]})
        assert login.status_code == 200, login.text
        return login.cookies["JSESSIONID"]

    def get(self, path: str, token: str) -> requests.Response:
        return requests.get(self.url + path, verify=self.cert, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})

    def schemathesis(self, *headers: str) -> subprocess.CompletedProcess:
        st = pathlib.Path(sys.executable).parent / "st"
        args = [str(st), "run", self.url + "/api/openapi.json", "--tls-verify", self.cert,
                "--checks", CHECKS, "--max-examples", "10", "--seed", "1",
                "--request-timeout", "10", "--output-truncate", "false"]
        for header in headers:
            args += ["-H", header]
        return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    node = Node(tmp_path_factory.mktemp("openapi"), binary)
    yield node
    assert node.portico.stop() == 0


def passes(run: subprocess.CompletedProcess) -> None:
    summary = run.stdout[run.stdout.rfind("= SUMMARY ="):]
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]
    # Every operation was tested, none skipped.
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    tested = re.search(r"Tested: (\d+)", summary)
    assert selected and tested, summary
    assert selected.group(1) == selected.group(2) == tested.group(1), summary


# Each credential still works after its run: the run was made with it, not with 401s.

def test_with_an_admin_token(node):
    token = node.token("st-admin", "portico:admin")
    passes(node.schemathesis(f"Authorization: Bearer {token}"))
    assert node.get("/api/v1/admin/realms", token).status_code == 200


def test_with_a_webhooks_token(node):
    token = node.token("st-webhooks", "portico:webhooks")
    passes(node.schemathesis(f"Authorization: Bearer {token}"))
    assert node.get("/api/v1/webhooks/subscriptions", token).status_code == 200


def test_with_an_xrtc_session(node):
    session = node.xrtc_session()
    passes(node.schemathesis(f"Cookie: JSESSIONID={session}"))
    still = node.post("/v1/item/set", {"items": [{"portalid": "after", "payload": "1"}]},
                      cookies={"JSESSIONID": session})
    assert still.status_code == 200, still.text


def test_without_credentials(node):
    passes(node.schemathesis())


def sse_events(reply: requests.Response) -> list[dict]:
    """The events of a whole `text/event-stream` body, parsed as the HTML standard says: UTF-8,
    lines ended by CRLF, LF or CR only (not by the other characters `str.splitlines` takes)."""
    events, fields = [], {}
    for line in re.split(r"\r\n|\r|\n", reply.content.decode("utf-8")) + [""]:
        if line == "":
            if "data" in fields:
                events.append(dict(fields))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = fields["data"] + "\n" + value if name == "data" and "data" in fields \
                else value
    return events


def test_every_event_stream_sends_the_events_its_document_gives(node):
    """Each stream, replayed from its start so it has events to send, against the event schema
    the document gives it, checked by jsonschema-rs (which Schemathesis brings)."""
    import jsonschema_rs

    document = requests.get(node.url + "/api/openapi.json", verify=node.cert, timeout=30).json()
    # Something to send: a datapoint write (journaled), two portal items.
    wrote = requests.put(node.url + "/api/v1/boiler/mode", json={"value": "eco"},
                         verify=node.cert, timeout=30)
    assert wrote.status_code == 200, wrote.text
    session = node.xrtc_session()
    for payload in ["1", "2"]:
        put = node.post("/v1/item/set", {"items": [{"portalid": "events", "payload": payload}]},
                        cookies={"JSESSIONID": session})
        assert put.status_code == 200, put.text
    streams = [
        ("/api/v1/events/stream", {}),
        ("/api/v1/datapoints/{key}/events", {"key": "Boiler.Mode"}),
        ("/api/v1/portals/{portalid}/events", {"portalid": "events"}),
    ]
    for template, names in streams:
        envelope = document["paths"][template]["get"]["responses"]["200"]["content"][
            "text/event-stream"]["schema"]
        data_schema = {**envelope["properties"]["data"]["contentSchema"],
                       "components": document["components"]}
        reply = requests.get(node.url + template.format(**names), verify=node.cert, timeout=30,
                             headers={"Last-Event-ID": "0"}, cookies={"JSESSIONID": session})
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse_events(reply)
        assert events, f"{template}: no events"
        for event in events:
            jsonschema_rs.validate(envelope, event)
            jsonschema_rs.validate(data_schema, json.loads(event["data"]))
