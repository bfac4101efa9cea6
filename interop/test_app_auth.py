"""App authentication (`POST /authentication`, JSON) checked by a client written by others: apps'
self-signed tokens come from Node.js's `jsonwebtoken` (interop/node/sign.mjs, the seed's
getRefrensToken: ES256 over {appId, iss: appId, aud: 'serana', sub: 'AppAuth'}, expiresIn 1h),
run as a subprocess; everything else is plain requests.

Apps are created with `portico admin app create` on the running server's data directory: fooApp
with --generate-key (the private key is printed once, the server keeps the public key) and
barApp with --public-key (an SPKI PEM of a key made here). Every refusal is 401 with the one
NotAuthenticated body, whatever the reason.
"""

import base64
import json
import os
import pathlib
import shutil
import subprocess

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"
SIGNER = NODE_DIR / "sign.mjs"
ENDPOINT = "/api/v1/plant/temperature"
NOT_AUTHENTICATED = {
    "name": "NotAuthenticated",
    "message": "Invalid login",
    "code": 401,
    "className": "not-authenticated",
    "data": {"message": "Invalid login"},
    "errors": {},
}


def printed(out: str, key: str) -> str:
    """The value of the `key: value` line `portico admin` printed."""
    values = [line.split(": ", 1)[1].strip() for line in out.splitlines()
              if line.startswith(key + ": ")]
    assert len(values) == 1, f"one {key!r} line expected in:\n{out}"
    return values[0]


def printed_private_key(out: str) -> bytes:
    """The PKCS#8 PEM printed after `private_key:`."""
    begin, end = "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----"
    lines = out.splitlines()
    marker = [i for i, line in enumerate(lines) if line.startswith("private_key:")]
    assert len(marker) == 1, f"one private_key line expected in:\n{out}"
    rest = "\n".join(lines[marker[0]:])
    assert begin in rest and end in rest, out
    return (rest[rest.index(begin):rest.index(end) + len(end)] + "\n").encode("ascii")


class World:
    def __init__(self, tmp: pathlib.Path, binary: str):
        self.binary = binary
        self.tmp = tmp
        self.data_dir = tmp / "data"
        config = tmp / "portico.toml"
        config.write_text(
            tokenkit.toml_table("datapoint", {"key": "plant.temp", "type": "float"})
            + tokenkit.toml_table("endpoint", {"path": ENDPOINT, "datapoint": "plant.temp",
                                               "read": ["plant:read"]})
            # These tests fail logins and token requests on purpose, all from 127.0.0.1 and
            # faster than the default throttle forgives them; throttling is not tested here.
            + "[idp.throttle]\nip_burst = 1000\naccount_burst = 1000\n")
        self.portico = tokenkit.Portico(binary, str(config), str(self.data_dir),
                                        str(tmp / "portico.log"))
        self.url = self.portico.url

    def admin(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTICO_")}
        done = subprocess.run([self.binary, "admin", "--data-dir", str(self.data_dir), *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, f"portico admin {' '.join(args)}: {done.stderr}"
        return done.stdout

    def authenticate(self, body: dict) -> requests.Response:
        return requests.post(self.url + "/authentication", json=body,
                             verify=self.portico.cert, timeout=30)

    def read_datapoint(self, access_token: str) -> int:
        reply = requests.get(self.url + ENDPOINT, verify=self.portico.cert, timeout=30,
                             headers={"Authorization": f"Bearer {access_token}"})
        return reply.status_code

    def key_file(self, name: str, pem: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(pem)
        return str(path)


class App:
    def __init__(self, app_id: str, name: str, secret: str | None, key_file: str):
        self.app_id = app_id
        self.name = name
        self.secret = secret
        self.key_file = key_file


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("app-auth"), binary)
    yield world
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"
    world.portico.process.stdout.close()


@pytest.fixture(scope="module")
def node():
    """The node binary, once sign.mjs's dependencies are installed (interop/run does it)."""
    binary = shutil.which("node")
    assert binary, "Node.js is needed to sign app tokens with jsonwebtoken"
    assert (NODE_DIR / "node_modules" / "jsonwebtoken").is_dir(), \
        "run `npm ci` in interop/node (interop/run does it when node_modules is missing)"
    return binary


@pytest.fixture(scope="module")
def foo(world):
    """fooApp, its key generated by Portico; the printed private key is kept for signing."""
    out = world.admin("app", "create", "fooApp", "--name", "Foo App", "--role", "plant:read",
                      "--generate-key")
    assert printed(out, "app_id") == "fooApp"
    pem = printed_private_key(out)
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    return App("fooApp", "Foo App", printed(out, "app_secret"),
               world.key_file("fooApp.pem", pem))


@pytest.fixture(scope="module")
def bar(world):
    """barApp, registered with the SPKI public key of a P-256 key made here."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = world.key_file("barApp.pub.pem", tokenkit.spki_pem(key))
    out = world.admin("app", "create", "barApp", "--name", "Bar App", "--role", "plant:read",
                      "--public-key", public)
    assert printed(out, "app_id") == "barApp"
    return App("barApp", "Bar App", None,
               world.key_file("barApp.pem", tokenkit.private_key_pem(key)))


def sign(node: str, app_id: str, key_file: str, *overrides: str) -> str:
    """A token from sign.mjs (jsonwebtoken); overrides like '--expires-in=2d'."""
    done = subprocess.run([node, str(SIGNER), "--app-id", app_id, "--key", key_file, *overrides],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.count(".") == 2, token
    return token


def claims_of(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def assert_not_authenticated(reply: requests.Response):
    assert reply.status_code == 401, f"{reply.status_code}: {reply.text}"
    assert reply.json() == NOT_AUTHENTICATED


def assert_authenticated(reply: requests.Response, app: App) -> str:
    """200 with exactly {accessToken, name, appId}; returns the accessToken."""
    assert reply.status_code == 200, f"{reply.status_code}: {reply.text}"
    body = reply.json()
    assert set(body) == {"accessToken", "name", "appId"}, body
    assert body["appId"] == app.app_id
    assert body["name"] == app.name
    assert isinstance(body["accessToken"], str) and body["accessToken"].count(".") == 2
    return body["accessToken"]


# --- The app strategy (appId and appSecret) ---

def test_app_secret_gives_a_token_that_reads_the_datapoint(world, foo):
    """strategy app with the right secret: 200 {accessToken, name, appId}; the token is a
    Portico bearer token for the app's role."""
    access_token = assert_authenticated(world.authenticate(
        {"strategy": "app", "appId": foo.app_id, "appSecret": foo.secret}), foo)
    assert world.read_datapoint(access_token) == 200


def test_wrong_app_secret_is_not_authenticated(world, foo):
    """strategy app with a wrong secret, another app's secret, or for an unknown app: 401."""
    other = world.admin("app", "create", "bazApp", "--name", "Baz App", "--role", "plant:read",
                        "--generate-key")
    other_secret = printed(other, "app_secret")
    assert other_secret != foo.secret
    assert_authenticated(world.authenticate(
        {"strategy": "app", "appId": "bazApp", "appSecret": other_secret}),
        App("bazApp", "Baz App", other_secret, ""))
    assert_not_authenticated(world.authenticate(
        {"strategy": "app", "appId": foo.app_id, "appSecret": foo.secret + "x"}))
    assert_not_authenticated(world.authenticate(
        {"strategy": "app", "appId": foo.app_id, "appSecret": other_secret}))
    assert_not_authenticated(world.authenticate(
        {"strategy": "app", "appId": "ghostApp", "appSecret": foo.secret}))


def test_unknown_strategy_is_not_authenticated(world, foo):
    """A strategy Portico does not have (FeathersJS's local): 401 with the same body."""
    assert_not_authenticated(world.authenticate(
        {"strategy": "local", "appId": foo.app_id, "appSecret": foo.secret}))


# --- The jwt strategy ---

def test_jwt_strategy_revalidates_a_portico_app_token(world, foo):
    """strategy jwt with the accessToken Portico issued: 200, the same accessToken back."""
    access_token = assert_authenticated(world.authenticate(
        {"strategy": "app", "appId": foo.app_id, "appSecret": foo.secret}), foo)
    again = world.authenticate({"strategy": "jwt", "accessToken": access_token})
    assert assert_authenticated(again, foo) == access_token


def test_jsonwebtoken_self_signed_token_is_exchanged_for_a_portico_token(world, node, foo):
    """strategy jwt with getRefrensToken's token (key printed by --generate-key): 200 with a new
    Portico accessToken, not the self-signed one, that reads the datapoint."""
    self_signed = sign(node, foo.app_id, foo.key_file)
    claims = claims_of(self_signed)
    assert claims["aud"] == "serana" and claims["exp"] - claims["iat"] == 3600
    reply = world.authenticate({"strategy": "jwt", "accessToken": self_signed})
    access_token = assert_authenticated(reply, foo)
    assert access_token != self_signed
    assert world.read_datapoint(access_token) == 200


def test_self_signed_token_of_an_app_registered_with_a_public_key(world, node, bar):
    """An app registered with --public-key (SPKI): its jsonwebtoken token is accepted."""
    reply = world.authenticate({"strategy": "jwt",
                                "accessToken": sign(node, bar.app_id, bar.key_file)})
    assert world.read_datapoint(assert_authenticated(reply, bar)) == 200


def tampered(token: str) -> str:
    """The token with its payload changed (exp 30 min later) and the signature kept."""
    head, _, signature = token.split(".")
    claims = claims_of(token)
    claims["exp"] += 1800
    return ".".join([head, tokenkit.json_b64url(claims), signature])


def other_key_file(world: World) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return world.key_file("other.pem", tokenkit.private_key_pem(key))


# Each case makes a token Portico must refuse: (node, world, fooApp) -> token.
REFUSED = {
    "tampered": lambda node, world, foo: tampered(sign(node, foo.app_id, foo.key_file)),
    "expired": lambda node, world, foo: sign(node, foo.app_id, foo.key_file,
                                             "--expires-in=-60"),
    "expires-in-2d": lambda node, world, foo: sign(node, foo.app_id, foo.key_file,
                                                   "--expires-in=2d"),
    "wrong-audience": lambda node, world, foo: sign(node, foo.app_id, foo.key_file,
                                                    "--audience=portico"),
    "other-p256-key": lambda node, world, foo: sign(node, foo.app_id, other_key_file(world)),
    "unknown-app-id": lambda node, world, foo: sign(node, "ghostApp", foo.key_file),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_self_signed_tokens_are_not_authenticated(world, node, foo, case):
    """Tampered, expired, lifetime over a day, wrong aud, another key, unknown appId: 401 with
    the NotAuthenticated body."""
    token = REFUSED[case](node, world, foo)
    assert_not_authenticated(world.authenticate({"strategy": "jwt", "accessToken": token}))


def test_refused_tokens_have_exactly_their_intended_defect(world, node, foo):
    """The refused tokens are what they claim to be (checked with PyJWT against the app's key),
    so each 401 above is for its stated reason."""
    public = serialization.load_pem_private_key(
        pathlib.Path(foo.key_file).read_bytes(), password=None).public_key()

    def verify(token, **options):
        return jwt.decode(token, public, algorithms=["ES256"], audience="serana",
                          options={"require": ["exp", "iat"], **options})

    valid = verify(sign(node, foo.app_id, foo.key_file))
    assert valid["iss"] == valid["appId"] == foo.app_id and valid["sub"] == "AppAuth"
    with pytest.raises(jwt.InvalidSignatureError):
        verify(REFUSED["tampered"](node, world, foo))
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(REFUSED["expired"](node, world, foo))
    long_lived = verify(REFUSED["expires-in-2d"](node, world, foo))
    assert long_lived["exp"] - long_lived["iat"] == 2 * 86400
    with pytest.raises(jwt.InvalidAudienceError):
        verify(REFUSED["wrong-audience"](node, world, foo))
    with pytest.raises(jwt.InvalidSignatureError):
        verify(REFUSED["other-p256-key"](node, world, foo))
    assert verify(REFUSED["unknown-app-id"](node, world, foo))["appId"] == "ghostApp"


def test_garbage_jwt_strategy_tokens_are_not_authenticated(world):
    """strategy jwt with no token, an empty one or garbage: 401 with the same body."""
    for body in ({"strategy": "jwt"}, {"strategy": "jwt", "accessToken": ""},
                 {"strategy": "jwt", "accessToken": "not-a-token"}):
        assert_not_authenticated(world.authenticate(body))
