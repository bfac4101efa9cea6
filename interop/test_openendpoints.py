"""OpenEndpoints-style hash-signed endpoints (`/{application}/{endpoint}?hash=…`) checked by
clients written by others:

- every hash is computed here with `hashlib`, from the seed's formula
  (openendpoints-authentication.txt, "Calculation of the Hash"): SHA-256, as hex, of the
  endpoint's name, the values of its include-in-hash parameters in their listed order, the
  environment name (`live` or `preview`) and one of the application's secret keys, concatenated
  (text as UTF-8). The formula is first checked against the seed's own example;
- plain requests send the seed's example as a GET, and the same parameters as POST bodies
  (form-urlencoded, multipart/form-data, JSON);
- a real browser (headless Chromium driven by Node.js's playwright-core, interop/node/form.mjs,
  run as a subprocess) opens a web form served by a `static_file` endpoint, types a temperature,
  ticks checkboxes and clicks submit; Portico checks the hidden hash, writes the datapoint and
  redirects (303) to a thank-you page of a small HTTP server here (the standard library's
  http.server, in a thread). The same form with its hidden `source` changed in the page ends on
  the error page with `error=hash_mismatch`, and writes nothing;
- `portico hash` prints the seed's two values and links that work.

Portico runs on its own configuration (written below) with one application `helloapp` whose
secret is the seed's `openendpoints`, and `rotapp` with two secrets (key rotation).
"""

import hashlib
import html
import json
import os
import pathlib
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"
FORM_SCRIPT = NODE_DIR / "form.mjs"
CHROMIUM = "/usr/bin/chromium"

SECRET = "openendpoints"
# The seed's example: endpoint helloworld, foo=abc, long=def, secret key openendpoints.
SEED_LIVE = "82bb6e7f675a8d872688cb593a64f615b37f88478d7fed8705496d3e7a1c2699"
SEED_PREVIEW = "4afcbe21891e5be6762f495958659a25950a83e7c52f13594cbebe43cfdd9bf4"
HELLO = {"foo": "abc", "long": "def"}
ROTAPP_SECRETS = ["old-secret-of-rotapp", "new-secret-of-rotapp"]
DATAPOINT = "plant.setpoint"
# The browser form's hidden `source`: a space and an ampersand, so the browser's form encoding
# and the redirect's percent-encoding both matter.
FORM_SOURCE = "spring flyer & co"


def oe_hash(endpoint: str, include_in_hash: list[str], environment: str, secret: str) -> str:
    """The seed's hash: SHA-256 hex of endpoint + include-in-hash values + environment + secret."""
    text = endpoint + "".join(include_in_hash) + environment + secret
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_formula_here_gives_the_seeds_example():
    """This file's formula reproduces both values the seed prints, so every hash below is the
    seed's hash and not a reading of Portico's code."""
    assert oe_hash("helloworld", ["abc", "def"], "live", SECRET) == SEED_LIVE
    assert oe_hash("helloworld", ["abc", "def"], "preview", SECRET) == SEED_PREVIEW


# --- The thank-you and error pages the contact endpoint redirects to ---

class Pages:
    """/thanks and /sorry over plain HTTP from a thread; every path asked is recorded."""

    def __init__(self):
        self.requested: list[str] = []
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                pages.requested.append(self.path)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query, keep_blank_values=True)
                if parts.path == "/thanks":
                    body = ("<!doctype html><title>Thanks</title><h1>Thank you</h1>"
                            f"<p>source: {html.escape(query.get('source', [''])[0])}</p>"
                            f"<p>temperature: {html.escape(query.get('t', [''])[0])}</p>")
                elif parts.path == "/sorry":
                    body = ("<!doctype html><title>Sorry</title><h1>Sorry</h1>"
                            f"<p>error: {html.escape(query.get('error', [''])[0])}</p>")
                else:
                    self.send_error(404)
                    return
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- Portico with the applications of this file ---

def toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable text is a TOML basic string


def form_html(source: str, contact_hash: str) -> str:
    """A plain HTML form posting to the contact endpoint, with its hash in a hidden field."""
    return f"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>Contact</title></head>
<body>
<form method="post" action="/helloapp/contact">
  <input type="hidden" name="source" value="{html.escape(source)}">
  <input type="hidden" name="hash" value="{contact_hash}">
  <label>Temperature <input type="text" name="temperature"></label>
  <label><input type="checkbox" name="topping" value="cheese"> Cheese</label>
  <label><input type="checkbox" name="topping" value="olives"> Olives</label>
  <button type="submit">Send</button>
</form>
</body>
</html>
"""


def config_text(static_dir: pathlib.Path, pages_url: str) -> str:
    redirect = pages_url + "/thanks?source=${source}&t=${temperature}&topping=${topping}"
    return f"""
[openendpoints]
prefix = ""
allow_targets = []
# Every test here calls from 127.0.0.1; the per-address rate is tested in tests/it.
calls_burst = 100000

[[datapoint]]
key = {toml_str(DATAPOINT)}
type = "float"

[[application]]
name = "helloapp"
secrets = [{toml_str(SECRET)}]
allow_weak_secret = true
static_dir = {toml_str(str(static_dir))}

[[application.endpoint]]
name = "helloworld"
parameters = [{{ name = "foo" }}, {{ name = "long" }}]
include_in_hash = ["foo", "long"]

[[application.endpoint]]
name = "form"
static_file = "form.html"

[[application.endpoint]]
name = "contact"
parameters = [
  {{ name = "source" }}, {{ name = "temperature" }}, {{ name = "topping", default = "" }},
]
include_in_hash = ["source"]
redirect = {toml_str(redirect)}
error_redirect = {toml_str(pages_url + "/sorry")}
actions = [
  {{ type = "write-datapoint", datapoint = {toml_str(DATAPOINT)}, value = "${{temperature}}" }},
]

[[application]]
name = "rotapp"
secrets = [{", ".join(toml_str(s) for s in ROTAPP_SECRETS)}]
static_dir = {toml_str(str(static_dir))}

[[application.endpoint]]
name = "ping"
"""


class World:
    def __init__(self, tmp: pathlib.Path, binary: str):
        self.binary = binary
        self.pages = Pages()
        self.static_dir = tmp / "static"
        self.static_dir.mkdir()
        self.form_html = form_html(FORM_SOURCE, oe_hash("contact", [FORM_SOURCE], "live", SECRET))
        (self.static_dir / "form.html").write_text(self.form_html, encoding="utf-8")
        self.config = tmp / "portico.toml"
        self.config.write_text(config_text(self.static_dir, self.pages.url), encoding="utf-8")
        self.portico = tokenkit.Portico(binary, str(self.config), str(tmp / "data"),
                                        str(tmp / "portico.log"))
        self.url = self.portico.url

    def get(self, path: str, params=None) -> requests.Response:
        return requests.get(self.url + path, params=params, verify=self.portico.cert,
                            timeout=30, allow_redirects=False)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, verify=self.portico.cert, timeout=30,
                             allow_redirects=False, **kwargs)

    def setpoint(self) -> dict:
        """The datapoint's current {value, quality, updateTime}, from the native API."""
        reply = self.get(f"/api/v1/datapoints/{DATAPOINT}")
        assert reply.status_code == 200, reply.text
        return reply.json()["current"]

    def hash_cli(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTICO_")}
        return subprocess.run([self.binary, "hash", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("openendpoints"), binary)
    yield world
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"
    world.portico.process.stdout.close()
    world.pages.close()


def assert_ok(reply: requests.Response, environment: str = "live"):
    """The answer of an endpoint without a configured answer."""
    assert reply.status_code == 200, f"{reply.status_code}: {reply.text}"
    assert reply.headers["content-type"].startswith("application/json"), reply.headers
    assert reply.json() == {"application": "helloapp", "endpoint": "helloworld",
                            "environment": environment}


def assert_problem(reply: requests.Response, status: int, code: str):
    assert reply.status_code == status, f"{reply.status_code}: {reply.text}"
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.headers
    body = reply.json()
    assert body["code"] == code, body
    assert body["status"] == status, body


def assert_reveals_nothing(reply: requests.Response, *expected: str):
    """Neither the body nor a header contains any of the hashes that would have been right."""
    seen = (reply.text + " " + " ".join(f"{k}: {v}" for k, v in reply.headers.items())).lower()
    for value in expected:
        assert value.lower() not in seen, "the refusal reveals the expected hash"


# --- The seed's example, as a GET ---

def test_seed_example_live(world):
    """GET /helloapp/helloworld?foo=abc&long=def&hash=82bb… (the seed's live value): 200."""
    assert_ok(world.get("/helloapp/helloworld", {**HELLO, "hash": SEED_LIVE}))


def test_uppercase_hash_is_accepted(world):
    """"The hash may be supplied as uppercase or lowercase in the request."""
    assert_ok(world.get("/helloapp/helloworld", {**HELLO, "hash": SEED_LIVE.upper()}))


def test_preview_environment_takes_the_preview_hash(world):
    """environment=preview with the seed's preview value: 200, and the answer says preview."""
    reply = world.get("/helloapp/helloworld",
                      {**HELLO, "environment": "preview", "hash": SEED_PREVIEW})
    assert_ok(reply, environment="preview")


def test_environments_do_not_share_hashes(world):
    """The live hash in preview, and the preview hash in live (the default): 403 hash_mismatch,
    revealing neither value."""
    live_in_preview = world.get("/helloapp/helloworld",
                                {**HELLO, "environment": "preview", "hash": SEED_LIVE})
    assert_problem(live_in_preview, 403, "hash_mismatch")
    assert_reveals_nothing(live_in_preview, SEED_PREVIEW)
    preview_in_live = world.get("/helloapp/helloworld", {**HELLO, "hash": SEED_PREVIEW})
    assert_problem(preview_in_live, 403, "hash_mismatch")
    assert_reveals_nothing(preview_in_live, SEED_LIVE)


def test_a_changed_parameter_is_a_hash_mismatch(world):
    """foo changed from abc to abd with the hash of abc: 403 hash_mismatch, and the hash that
    would be right for abd is nowhere in the answer."""
    reply = world.get("/helloapp/helloworld", {"foo": "abd", "long": "def", "hash": SEED_LIVE})
    assert_problem(reply, 403, "hash_mismatch")
    assert_reveals_nothing(reply, oe_hash("helloworld", ["abd", "def"], "live", SECRET))
    # The order of include_in_hash counts: foo and long swapped is another hash.
    swapped = oe_hash("helloworld", ["def", "abc"], "live", SECRET)
    assert_problem(world.get("/helloapp/helloworld", {**HELLO, "hash": swapped}),
                   403, "hash_mismatch")


def test_near_misses_are_hash_mismatches(world):
    """The right hash with its last digit changed, or cut one digit short: 403 hash_mismatch."""
    last = "0" if SEED_LIVE[-1] != "0" else "1"
    for wrong in (SEED_LIVE[:-1] + last, SEED_LIVE[:-1]):
        reply = world.get("/helloapp/helloworld", {**HELLO, "hash": wrong})
        assert_problem(reply, 403, "hash_mismatch")
        assert_reveals_nothing(reply, SEED_LIVE)


def test_no_hash_is_hash_missing(world):
    """The seed's parameters without `hash`: 403 hash_missing."""
    assert_problem(world.get("/helloapp/helloworld", HELLO), 403, "hash_missing")


def test_another_applications_secret_is_refused(world):
    """rotapp's secrets do not sign helloapp's requests: 403 hash_mismatch."""
    other = oe_hash("helloworld", ["abc", "def"], "live", ROTAPP_SECRETS[0])
    assert_problem(world.get("/helloapp/helloworld", {**HELLO, "hash": other}),
                   403, "hash_mismatch")


def test_every_secret_of_an_application_is_valid(world):
    """Rotation: a hash with either of rotapp's two secrets is accepted; with helloapp's
    secret, 403 hash_mismatch."""
    for secret in ROTAPP_SECRETS:
        reply = world.get("/rotapp/ping", {"hash": oe_hash("ping", [], "live", secret)})
        assert reply.status_code == 200, f"secret {secret!r}: {reply.status_code} {reply.text}"
        assert reply.json() == {"application": "rotapp", "endpoint": "ping",
                                "environment": "live"}
    assert_problem(world.get("/rotapp/ping", {"hash": oe_hash("ping", [], "live", SECRET)}),
                   403, "hash_mismatch")


# --- Parameters ---

def test_an_undeclared_parameter_is_refused(world):
    """A parameter the endpoint does not declare (with a hash that is right, since it is not in
    include_in_hash): 400 unknown_parameter."""
    reply = world.get("/helloapp/helloworld", {**HELLO, "bar": "1", "hash": SEED_LIVE})
    assert_problem(reply, 400, "unknown_parameter")


def test_a_declared_parameter_without_default_must_be_sent(world):
    """`long` left out, with the hash a missing value would give (as if empty) so that the hash
    is no reason to refuse: 400 missing_parameter."""
    reply = world.get("/helloapp/helloworld",
                      {"foo": "abc", "hash": oe_hash("helloworld", ["abc"], "live", SECRET)})
    assert_problem(reply, 400, "missing_parameter")


def test_an_unknown_environment_is_refused(world):
    """environment=staging (hashed as if it were one, so the hash is no reason to refuse): 400
    invalid_environment."""
    reply = world.get("/helloapp/helloworld",
                      {**HELLO, "environment": "staging",
                       "hash": oe_hash("helloworld", ["abc", "def"], "staging", SECRET)})
    assert_problem(reply, 400, "invalid_environment")


# --- POST bodies ---

BODIES = {
    "form-urlencoded": (lambda: {"data": {**HELLO, "hash": SEED_LIVE}},
                        "application/x-www-form-urlencoded"),
    # requests writes multipart when files= is given: foo and hash from data=, long from files=
    # as a part without a file name (a plain form field).
    "multipart": (lambda: {"data": {"foo": "abc", "hash": SEED_LIVE},
                           "files": {"long": (None, "def")}},
                  "multipart/form-data"),
    "json": (lambda: {"json": {**HELLO, "hash": SEED_LIVE}}, "application/json"),
}


@pytest.mark.parametrize("kind", list(BODIES))
def test_post_bodies_carry_the_parameters(world, kind):
    """POST with the seed's parameters and hash in a form-urlencoded, multipart/form-data or JSON
    body: 200, as the GET."""
    make, content_type = BODIES[kind]
    reply = world.post("/helloapp/helloworld", **make())
    assert reply.request.headers["Content-Type"].startswith(content_type), \
        "the request really has the body kind this case is about"
    assert_ok(reply)


def test_post_body_with_the_hash_in_the_query(world):
    """POST /helloapp/helloworld?hash=… with foo and long in a JSON body: parameters come from
    both places, 200."""
    reply = world.post("/helloapp/helloworld", params={"hash": SEED_LIVE}, json=HELLO)
    assert_ok(reply)


@pytest.mark.parametrize("kind", list(BODIES))
def test_post_bodies_are_hashed(world, kind):
    """The same bodies with foo changed after hashing: 403 hash_mismatch (body values are what
    is hashed)."""
    make, _ = BODIES[kind]
    request = make()
    fields = request.get("data") or request.get("json")
    fields["foo"] = "abd"
    assert_problem(world.post("/helloapp/helloworld", **request), 403, "hash_mismatch")


# --- The static file endpoint ---

def test_static_file_endpoint_serves_the_form(world):
    """GET /helloapp/form?hash=… ("form" + "live" + secret: no include_in_hash): 200 text/html,
    the file as written; without the hash, 403 hash_missing."""
    reply = world.get("/helloapp/form", {"hash": oe_hash("form", [], "live", SECRET)})
    assert reply.status_code == 200, f"{reply.status_code}: {reply.text}"
    assert reply.headers["content-type"].startswith("text/html"), reply.headers
    assert reply.content.decode("utf-8") == world.form_html
    assert_problem(world.get("/helloapp/form"), 403, "hash_missing")
    assert_problem(world.get("/helloapp/form", {"hash": oe_hash("form", [], "preview", SECRET)}),
                   403, "hash_mismatch")


# --- Redirects and actions, with plain requests ---

def redirect_target(reply: requests.Response) -> tuple[str, dict]:
    """(scheme://host:port/path, query as {name: [values]}) of a 303's Location."""
    assert reply.status_code == 303, f"{reply.status_code}: {reply.text}"
    parts = urlsplit(reply.headers["location"])
    return (f"{parts.scheme}://{parts.netloc}{parts.path}",
            parse_qs(parts.query, keep_blank_values=True))


def test_success_redirects_with_the_values_percent_encoded(world):
    """POST to contact (source with a space, '&', '/' and non-ASCII letters; two toppings):
    303 to the configured redirect with each value percent-encoded, so the query decodes to
    exactly the values sent and the toppings joined with `||`; the datapoint holds the
    temperature."""
    source = "Grüße & co/1"
    reply = world.post("/helloapp/contact", data=[
        ("source", source), ("temperature", "19.25"), ("topping", "cheese"),
        ("topping", "olives"), ("hash", oe_hash("contact", [source], "live", SECRET))])
    target, query = redirect_target(reply)
    assert target == world.pages.url + "/thanks"
    assert query == {"source": [source], "t": ["19.25"], "topping": ["cheese||olives"]}
    current = world.setpoint()
    assert current["value"] == 19.25 and current["quality"] == "good", current


def test_a_default_fills_a_parameter_not_sent(world):
    """topping not sent: its default (empty) is used, 303 to the thank-you page."""
    source = "newsletter"
    reply = world.post("/helloapp/contact", data={
        "source": source, "temperature": "18",
        "hash": oe_hash("contact", [source], "live", SECRET)})
    target, query = redirect_target(reply)
    assert target == world.pages.url + "/thanks"
    assert query == {"source": [source], "t": ["18"], "topping": [""]}
    assert world.setpoint()["value"] == 18.0


def test_errors_redirect_to_the_error_page_and_change_nothing(world):
    """With error_redirect every refusal is a 303 to it with ?error=<code> appended, and no
    action runs: the datapoint keeps its value."""
    source = "newsletter"
    good = oe_hash("contact", [source], "live", SECRET)
    target, _ = redirect_target(world.post("/helloapp/contact", data={
        "source": source, "temperature": "17.5", "hash": good}))
    assert target == world.pages.url + "/thanks"
    before = world.setpoint()
    assert before["value"] == 17.5, before
    cases = {
        "hash_mismatch": {"source": "someone else", "temperature": "99", "hash": good},
        "hash_missing": {"source": source, "temperature": "99"},
        "missing_parameter": {"source": source, "hash": good},
        "unknown_parameter": {"source": source, "temperature": "99", "colour": "red",
                              "hash": good},
        "invalid_environment": {"source": source, "temperature": "99", "environment": "staging",
                                "hash": oe_hash("contact", [source], "staging", SECRET)},
    }
    for code, data in cases.items():
        reply = world.post("/helloapp/contact", data=data)
        assert reply.status_code == 303, f"{code}: {reply.status_code} {reply.text}"
        assert reply.headers["location"] == f"{world.pages.url}/sorry?error={code}"
    assert world.setpoint() == before, "a refused request wrote the datapoint"


# --- A real browser submitting the form ---

@pytest.fixture(scope="module")
def node():
    """The node binary, once form.mjs's dependencies are installed, and Chromium to drive."""
    binary = shutil.which("node")
    assert binary, "Node.js is needed to drive Chromium with playwright-core"
    assert (NODE_DIR / "node_modules" / "playwright-core").is_dir(), \
        "run `npm ci` in interop/node (playwright-core is pinned in its package-lock.json)"
    assert os.access(CHROMIUM, os.X_OK), \
        f"{CHROMIUM} is required (Debian package `chromium`; .ci/run installs it)"
    return binary


def browser_submit(node: str, job: dict) -> dict:
    """Runs form.mjs on `job` and returns what it printed."""
    done = subprocess.run([node, str(FORM_SCRIPT)], input=json.dumps(job),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"form.mjs failed:\n{done.stderr}"
    return json.loads(done.stdout)


def form_link(world: World) -> str:
    return f"{world.url}/helloapp/form?{urlencode({'hash': oe_hash('form', [], 'live', SECRET)})}"


def assert_browser_posted_the_form(world: World, result: dict) -> dict:
    """The form page loaded, and the click POSTed it (form-urlencoded) to the contact endpoint,
    which answered 303; returns that first request of the chain."""
    assert result["form"]["status"] == 200, result["form"]
    posted = result["chain"][0]
    assert posted["method"] == "POST" and posted["url"] == world.url + "/helloapp/contact", posted
    assert posted["contentType"] == "application/x-www-form-urlencoded", posted
    assert posted["status"] == 303, posted
    return posted


def test_browser_submits_the_form_and_lands_on_the_thank_you_page(world, node):
    """Chromium opens the form endpoint's link, types a temperature, ticks both toppings and
    clicks Send: it ends on /thanks with source and temperature in the query (toppings joined
    with `||`), the thank-you server served that page, and the datapoint holds the temperature.
    """
    result = browser_submit(node, {
        "url": form_link(world),
        "fill": {"temperature": "21.5"},
        "check": [{"name": "topping", "value": "cheese"}, {"name": "topping", "value": "olives"}],
    })
    posted = assert_browser_posted_the_form(world, result)
    assert parse_qs(posted["postData"]) == {
        "source": [FORM_SOURCE], "temperature": ["21.5"], "topping": ["cheese", "olives"],
        "hash": [oe_hash("contact", [FORM_SOURCE], "live", SECRET)]}, posted["postData"]

    final = urlsplit(result["url"])
    assert f"{final.scheme}://{final.netloc}{final.path}" == world.pages.url + "/thanks", result
    assert parse_qs(final.query, keep_blank_values=True) == {
        "source": [FORM_SOURCE], "t": ["21.5"], "topping": ["cheese||olives"]}, result["url"]
    assert result["status"] == 200 and "Thank you" in result["text"], result
    assert f"source: {FORM_SOURCE}" in result["text"], result["text"]
    assert result["url"].removeprefix(world.pages.url) in world.pages.requested, \
        "the browser itself followed the redirect to the thank-you server"

    current = world.setpoint()
    assert current["value"] == 21.5 and current["quality"] == "good", current


def test_browser_with_a_tampered_hidden_field_lands_on_the_error_page(world, node):
    """The same form with its hidden `source` changed in the page before submitting: Chromium
    posts the changed value and ends on /sorry?error=hash_mismatch; the datapoint is unchanged.
    """
    before = world.setpoint()
    result = browser_submit(node, {
        "url": form_link(world),
        "fill": {"temperature": "35"},
        "check": [{"name": "topping", "value": "olives"}],
        "set": {"source": "someone else"},
    })
    posted = assert_browser_posted_the_form(world, result)
    assert parse_qs(posted["postData"])["source"] == ["someone else"], \
        "the tampered value reached the server"
    assert result["url"] == world.pages.url + "/sorry?error=hash_mismatch", result
    assert result["status"] == 200 and "Sorry" in result["text"], result
    assert world.setpoint() == before, "a form with a tampered hidden field wrote the datapoint"


# --- portico hash ---

@pytest.mark.parametrize("environment,expected", [("live", SEED_LIVE), ("preview", SEED_PREVIEW)])
def test_hash_command_prints_the_seeds_values_and_a_working_link(world, environment, expected):
    """`portico hash --app helloapp --endpoint helloworld -p foo=abc -p long=def` prints the seed's
    hash, then the link with the parameters in order (and environment=preview for preview);
    the link answers 200."""
    args = ["--app", "helloapp", "--endpoint", "helloworld", "--base-url", world.url,
            "-p", "foo=abc", "-p", "long=def"]
    env_query = ""
    if environment == "preview":
        args += ["--env", "preview"]
        env_query = "&environment=preview"
    done = world.hash_cli(*args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [expected,
                     f"{world.url}/helloapp/helloworld?foo=abc&long=def{env_query}&hash={expected}"]
    reply = requests.get(lines[1], verify=world.portico.cert, timeout=30)
    assert_ok(reply, environment=environment)


def test_hash_command_refuses_an_unknown_application(world):
    """`portico hash --app nosuchapp …`: a non-zero exit and no hash printed."""
    done = world.hash_cli("--app", "nosuchapp", "--endpoint", "helloworld",
                          "-p", "foo=abc", "-p", "long=def")
    assert done.returncode != 0
    assert SEED_LIVE not in done.stdout
