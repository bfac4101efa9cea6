"""The built-in identity provider's user-facing flows, checked by clients written by others.

Authlib's OAuth2Session is the client: the authorization code flow with PKCE (S256) for a public
client and without PKCE for a confidential one, refresh with rotation, token introspection
(RFC 7662), revocation (RFC 7009) and the userinfo endpoint. A requests Session plays the
browser: it opens the authorization URL, submits the login form (parsed with the standard
library's html.parser) and reads the redirect from the Location header; nothing listens at the
loopback redirect URI. ID tokens are validated the way Authlib's own OpenID client does it
(joserfc against the realm's JWKS, then authlib.oidc.core.CodeIDToken); PyJWT verifies the access
tokens. RP-initiated logout is a browser GET to the end_session_endpoint.

Users, clients and a second realm (`strict`, refresh-token reuse grace 0 s) are created with
`portico admin` on the running server's data directory, as an operator would.
"""

import base64
import json
import os
import pathlib
import ssl
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc import rpinitiated
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENDPOINT = tokenkit.PROTECTED_ENDPOINT
PASSWORD = "correct horse battery staple"
# A loopback redirect URI registered without a port; the flows use it with one (RFC 8252, 7.3).
LOOPBACK = "http://127.0.0.1/callback"
LOOPBACK_WITH_PORT = "http://127.0.0.1:53111/callback"
CONFIDENTIAL_REDIRECT = "https://app.example/cb"
POST_LOGOUT = "https://app.example/logged-out"


def printed(out: str, key: str) -> str:
    """The value of the `key: value` line `portico admin` printed."""
    values = [line.split(": ", 1)[1].strip() for line in out.splitlines()
              if line.startswith(key + ": ")]
    assert len(values) == 1, f"one {key!r} line expected in:\n{out}"
    return values[0]


class World(tokenkit.IdpWorld):
    def __init__(self, tmp: pathlib.Path, binary: str):
        # These tests fail on purpose, all from 127.0.0.1 and faster than the default throttle
        # forgives; throttling is tested in the Rust integration suite.
        super().__init__(tmp, binary, throttle=False)

    def issuer(self, realm: str = "node") -> str:
        return f"{self.url}/realms/{realm}"

    def user(self, name: str, *roles: str, email: str | None = None,
             full_name: str | None = None, realm: str = "node") -> str:
        """Creates a user with PASSWORD (given on stdin, without a newline); returns its id."""
        args = ["user", "create", name, "--password-stdin"]
        for role in roles:
            args += ["--role", role]
        if email is not None:
            args += ["--email", email]
        if full_name is not None:
            args += ["--name", full_name]
        if realm != "node":
            args += ["--realm", realm]
        return printed(self.admin(*args, stdin=PASSWORD), "user_id")

    def client(self, client_id: str, *options: str, realm: str = "node") -> str | None:
        """Creates a client; returns its secret, or None for a public client."""
        args = ["client", "create", client_id, *options]
        if realm != "node":
            args += ["--realm", realm]
        out = self.admin(*args)
        if "--public" in options:
            assert "client_secret:" not in out, f"a public client has no secret:\n{out}"
            return None
        return printed(out, "client_secret")

    def discovery(self, realm: str = "node") -> dict:
        reply = requests.get(self.issuer(realm) + "/.well-known/openid-configuration",
                             verify=self.portico.cert, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def jwks(self, realm: str = "node") -> dict:
        reply = requests.get(self.discovery(realm)["jwks_uri"], verify=self.portico.cert,
                             timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def session(self, client_id: str, secret: str | None = None, *,
                method: str | None = None, redirect_uri: str | None = None,
                pkce: bool = False) -> OAuth2Session:
        """An Authlib client; without a secret it authenticates with `none` (client_id only)."""
        session = OAuth2Session(
            client_id, secret,
            token_endpoint_auth_method=method or ("client_secret_basic" if secret else "none"),
            redirect_uri=redirect_uri,
            code_challenge_method="S256" if pkce else None,
            default_timeout=30)
        # The sandbox's REQUESTS_CA_BUNDLE would override a verify set on the session.
        session.trust_env = False
        session.verify = self.portico.cert
        return session

    def browser(self) -> requests.Session:
        """The user agent: one cookie jar for the login page and the form post."""
        browser = requests.Session()
        browser.trust_env = False
        browser.verify = self.portico.cert
        return browser

    def read_datapoint(self, access_token: str) -> int:
        reply = requests.get(self.url + ENDPOINT, verify=self.portico.cert, timeout=30,
                             headers={"Authorization": f"Bearer {access_token}"})
        return reply.status_code


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("oidc-flows"), binary)
    yield world
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"
    world.portico.process.stdout.close()


@pytest.fixture(scope="module")
def alice(world):
    """The user id of alice (role plant:read, an email address, a full name) in realm node."""
    return world.user("alice", "plant:read", email="alice@example.com", full_name="Alice Liddell")


@pytest.fixture(scope="module")
def web(world):
    """A public client with a loopback redirect URI and a post-logout redirect URI."""
    world.client("web", "--public", "--grant", "authorization_code", "--grant", "refresh_token",
                 "--redirect-uri", LOOPBACK, "--post-logout-redirect-uri", POST_LOGOUT)
    return "web"


@pytest.fixture(scope="module")
def backend(world):
    """The secret of `backend`, a confidential client using the code flow."""
    return world.client("backend", "--grant", "authorization_code", "--grant", "refresh_token",
                        "--redirect-uri", CONFIDENTIAL_REDIRECT, "--role", "plant:read")


@pytest.fixture(scope="module")
def rs(world):
    """The secret of `rs`, a confidential client (client credentials) that introspects."""
    return world.client("rs", "--role", "introspector")


@pytest.fixture(scope="module")
def strict(world):
    """Realm `strict` (refresh-token reuse grace 0 s) with user carol (whose id it returns) and
    the public client strict-web."""
    world.admin("realm", "create", "strict", "--refresh-reuse-grace-seconds", "0")
    # The server loads new realms within about 5 s: poll its discovery document, for 30 s at most.
    url = world.issuer("strict") + "/.well-known/openid-configuration"
    deadline = time.monotonic() + 30
    while True:
        reply = requests.get(url, verify=world.portico.cert, timeout=30)
        if reply.status_code == 200:
            break
        assert time.monotonic() < deadline, f"realm strict not served after 30 s: {reply}"
        time.sleep(0.25)
    assert reply.json()["issuer"] == world.issuer("strict")
    carol = world.user("carol", "plant:read", realm="strict")
    world.client("strict-web", "--public", "--grant", "authorization_code",
                 "--grant", "refresh_token", "--redirect-uri", LOOPBACK, realm="strict")
    return carol


# --- The browser's side: the login form ---

class Form:
    def __init__(self, method: str, action: str):
        self.method = method
        self.action = action
        self.inputs: list[tuple[str, str]] = []


class FormParser(HTMLParser):
    """Collects every <form> with its named <input>s (attribute values arrive unescaped)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.open: Form | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.open = Form((attrs.get("method") or "get").lower(), attrs.get("action") or "")
            self.forms.append(self.open)
        elif tag == "input" and self.open is not None and attrs.get("name"):
            self.open.inputs.append((attrs["name"], attrs.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.open = None


def login_form(page: requests.Response) -> Form:
    """The page's one login form: method post, with username and password inputs."""
    assert page.headers.get("Content-Type", "").startswith("text/html"), page.headers
    parser = FormParser()
    parser.feed(page.text)
    parser.close()
    assert len(parser.forms) == 1, f"exactly one form expected:\n{page.text}"
    form = parser.forms[0]
    assert form.method == "post" and form.action, f"<form method=post action=...>: {page.text}"
    names = [name for name, _ in form.inputs]
    assert "username" in names and "password" in names, names
    return form


def submit(browser: requests.Session, page: requests.Response, form: Form, username: str,
           password: str) -> requests.Response:
    """Posts the form as a browser would: every input as given, the credentials filled in."""
    fields = [(name, username if name == "username" else password if name == "password"
               else value) for name, value in form.inputs]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    return browser.post(urljoin(page.url, form.action), data=fields, allow_redirects=False,
                        timeout=30, headers={"Origin": origin, "Referer": page.url})


def open_login(browser: requests.Session, authorization_url: str):
    page = browser.get(authorization_url, allow_redirects=False, timeout=30)
    assert page.status_code == 200, f"{page.status_code}: {page.text}"
    return page, login_form(page)


def query(location: str) -> dict:
    """The query parameters of a redirect, each expected once."""
    params = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in params.values()), location
    return {k: v[0] for k, v in params.items()}


class Login:
    """One completed authorization code flow."""

    def __init__(self, token, nonce, state, location, browser):
        self.token = token
        self.nonce = nonce
        self.state = state
        self.location = location
        self.browser = browser


def authorize(world: World, session: OAuth2Session, username: str, *,
              scope: str = "openid profile", realm: str = "node") -> tuple:
    """Runs the browser part: returns (Location of the 303, state, nonce, code_verifier,
    browser). PKCE is used when the session has code_challenge_method S256."""
    document = world.discovery(realm)
    verifier = generate_token(48) if session.code_challenge_method == "S256" else None
    nonce = generate_token(20)
    url, state = session.create_authorization_url(
        document["authorization_endpoint"], code_verifier=verifier, scope=scope, nonce=nonce)
    assert ("code_challenge=" in url) == (verifier is not None), url
    browser = world.browser()
    page, form = open_login(browser, url)
    reply = submit(browser, page, form, username, PASSWORD)
    assert reply.status_code == 303, f"{reply.status_code}: {reply.text}"
    location = reply.headers["Location"]
    assert location.startswith(session.redirect_uri + "?"), location
    params = query(location)
    assert params["state"] == state
    assert params["iss"] == world.issuer(realm), "RFC 9207 iss in the authorization response"
    assert params["code"]
    return location, state, nonce, verifier, browser


def login(world: World, session: OAuth2Session, username: str, *, scope: str = "openid profile",
          realm: str = "node") -> Login:
    """The whole authorization code flow, ending with Authlib's token request."""
    location, state, nonce, verifier, browser = authorize(world, session, username,
                                                          scope=scope, realm=realm)
    token = session.fetch_token(world.discovery(realm)["token_endpoint"],
                                authorization_response=location, code_verifier=verifier,
                                state=state)
    return Login(token, nonce, state, location, browser)


def record_token_responses(session: OAuth2Session) -> list:
    """Authlib compliance hooks that keep every token endpoint response the session sees."""
    seen = []

    def keep(response):
        seen.append(response)
        return response
    session.register_compliance_hook("access_token_response", keep)
    session.register_compliance_hook("refresh_token_response", keep)
    return seen


def assert_oauth_error(raised, error: str, response: requests.Response, status: int):
    """Authlib raised `error`, and the response was RFC 6749 JSON with that status."""
    assert getattr(raised.value, "error", None) == error, repr(raised.value)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body.get("error_description"), str), body


# --- Token validation ---

def id_token_claims(world: World, id_token: str, client_id: str, *, nonce: str | None,
                    access_token: str | None = None, realm: str = "node") -> CodeIDToken:
    """Validates an ID token as Authlib's OpenID client does (parse_id_token): signature with
    the realm's JWKS (RS256 only), then CodeIDToken claims (iss, aud, exp, iat, nonce, azp,
    at_hash when present)."""
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256", header
    token = jose_jwt.decode(id_token, KeySet.import_key_set(world.jwks(realm)),
                            registry=JWSRegistry(algorithms=["RS256"],
                                                 strict_check_header=False))
    claims = CodeIDToken(token.claims, token.header,
                         {"iss": {"essential": True, "value": world.issuer(realm)},
                          "aud": {"essential": True, "value": client_id}},
                         {"nonce": nonce, "client_id": client_id, "access_token": access_token})
    claims.validate(leeway=60)
    return claims


def access_token_claims(world: World, access_token: str, realm: str = "node") -> dict:
    """Verifies an access token with PyJWT and the realm's published keys."""
    context = ssl.create_default_context(cafile=world.portico.cert)
    keys = jwt.PyJWKClient(world.discovery(realm)["jwks_uri"], ssl_context=context)
    key = keys.get_signing_key_from_jwt(access_token)
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"  # RFC 9068
    return jwt.decode(access_token, key.key, algorithms=["ES256"], audience="portico",
                      issuer=world.issuer(realm),
                      options={"require": ["exp", "iat", "sub", "jti"]})


# --- Discovery ---

def test_discovery_advertises_the_code_flow_endpoints_and_methods(world):
    """Discovery lists every endpoint under protocol/openid-connect and the contract's methods."""
    document = world.discovery()
    OpenIDProviderMetadata(document).validate(
        metadata_classes=[rpinitiated.OpenIDProviderMetadata])
    AuthorizationServerMetadata(document).validate()
    issuer = world.issuer()
    base = issuer + "/protocol/openid-connect/"
    assert document["issuer"] == issuer
    assert document["authorization_endpoint"] == base + "auth"
    assert document["token_endpoint"] == base + "token"
    assert document["jwks_uri"] == base + "certs"
    assert document["userinfo_endpoint"] == base + "userinfo"
    assert document["end_session_endpoint"] == base + "logout"
    assert document["introspection_endpoint"] == base + "token/introspect"
    assert document["revocation_endpoint"] == base + "revoke"
    assert set(document["grant_types_supported"]) == {
        "authorization_code", "client_credentials", "refresh_token"}
    assert document["response_types_supported"] == ["code"]
    assert document["response_modes_supported"] == ["query"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "none"}
    assert set(document["introspection_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post"}
    assert set(document["revocation_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "none"}
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"openid", "profile", "email", "offline_access"} <= set(document["scopes_supported"])
    assert document["authorization_response_iss_parameter_supported"] is True


# --- Authorization code flow ---

def test_public_client_code_flow_with_pkce_gives_tokens_that_read_the_datapoint(
        world, alice, web):
    """Public client + PKCE S256 on a loopback URI with a port: the token response, the access
    token (ES256, at+jwt, user's roles), the ID token (RS256, CodeIDToken) and a datapoint read."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    done = login(world, session, "alice")
    token = done.token
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["refresh_token"] and token["id_token"]
    assert isinstance(token["refresh_expires_in"], int) and token["refresh_expires_in"] > 0
    assert {"openid", "profile"} <= set(token["scope"].split())

    access = access_token_claims(world, token["access_token"])
    assert access["sub"] == alice
    assert access["realm_access"]["roles"] == ["plant:read"]
    assert {"openid", "profile"} <= set(access["scope"].split())

    id_token = id_token_claims(world, token["id_token"], web, nonce=done.nonce,
                               access_token=token["access_token"])
    assert id_token["sub"] == alice
    assert id_token["nonce"] == done.nonce
    assert id_token["azp"] == web
    assert isinstance(id_token["auth_time"], int)
    assert id_token["auth_time"] <= id_token["iat"]
    assert isinstance(id_token["sid"], str) and id_token["sid"]

    reply = session.get(world.url + ENDPOINT)  # Authlib puts the access token in the header
    assert reply.status_code == 200, reply.text


def test_wrong_password_answers_401_with_the_form_again(world, alice, web):
    """A wrong password: 401 HTML with the login form again and no redirect; that form then
    accepts the right password."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    url, state = session.create_authorization_url(
        world.discovery()["authorization_endpoint"], code_verifier=generate_token(48),
        scope="openid", nonce=generate_token(20))
    browser = world.browser()
    page, form = open_login(browser, url)
    refused = submit(browser, page, form, "alice", "not the password at all")
    assert refused.status_code == 401, refused.text
    assert "Location" not in refused.headers
    again = login_form(refused)
    accepted = submit(browser, refused, again, "alice", PASSWORD)
    assert accepted.status_code == 303, accepted.text
    assert query(accepted.headers["Location"])["state"] == state


def test_public_client_without_pkce_is_refused_at_the_authorization_endpoint(world, web):
    """A public client's authorization request without code_challenge: no login form, but a
    303 back to the client with error=invalid_request, the state and iss, and no code."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=False)
    url, state = session.create_authorization_url(
        world.discovery()["authorization_endpoint"], scope="openid", nonce=generate_token(20))
    assert "code_challenge" not in url
    reply = world.browser().get(url, allow_redirects=False, timeout=30)
    assert reply.status_code == 303, f"{reply.status_code}: {reply.text}"
    location = reply.headers["Location"]
    assert location.startswith(LOOPBACK_WITH_PORT + "?"), location
    params = query(location)
    assert "code" not in params
    assert params["error"] == "invalid_request"
    assert params["state"] == state
    assert params["iss"] == world.issuer()


def test_code_verifier_that_does_not_match_is_invalid_grant(world, alice, web):
    """PKCE: the token request with a different code_verifier is 400 invalid_grant."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    seen = record_token_responses(session)
    location, state, _, verifier, _ = authorize(world, session, "alice")
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(world.discovery()["token_endpoint"], authorization_response=location,
                            code_verifier=generate_token(48), state=state)
    assert_oauth_error(raised, "invalid_grant", seen[-1], 400)


def test_authorization_code_is_single_use(world, alice, web):
    """Redeeming the same code twice: the second time is 400 invalid_grant (RFC 6749 JSON)."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    seen = record_token_responses(session)
    location, state, _, verifier, _ = authorize(world, session, "alice")
    token_endpoint = world.discovery()["token_endpoint"]
    first = session.fetch_token(token_endpoint, authorization_response=location,
                                code_verifier=verifier, state=state)
    assert first["access_token"]
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(token_endpoint, authorization_response=location,
                            code_verifier=verifier, state=state)
    assert_oauth_error(raised, "invalid_grant", seen[-1], 400)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_code_flow_without_pkce(world, alice, backend, method):
    """A confidential client may omit PKCE; it authenticates with basic or post and gets an
    ID token for itself and an access token that reads the datapoint."""
    session = world.session("backend", backend, method=method,
                            redirect_uri=CONFIDENTIAL_REDIRECT)
    done = login(world, session, "alice")
    token = done.token
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    claims = id_token_claims(world, token["id_token"], "backend", nonce=done.nonce,
                             access_token=token["access_token"])
    assert claims["sub"] == alice
    assert access_token_claims(world, token["access_token"])["sub"] == alice
    assert session.get(world.url + ENDPOINT).status_code == 200


def test_confidential_client_with_a_wrong_secret_is_401_invalid_client(world, alice, backend):
    """Redeeming a code with a wrong client secret: 401 invalid_client."""
    session = world.session("backend", "not-the-secret", redirect_uri=CONFIDENTIAL_REDIRECT)
    seen = record_token_responses(session)
    location, state, _, _, _ = authorize(world, session, "alice")
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(world.discovery()["token_endpoint"],
                            authorization_response=location, state=state)
    assert_oauth_error(raised, "invalid_client", seen[-1], 401)


# --- Refresh ---

def test_refresh_rotates_the_refresh_token_and_issues_new_tokens(world, alice, web):
    """Each refresh returns a new refresh token, a new access token that reads the datapoint
    and a new ID token for the same user and authentication."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    done = login(world, session, "alice")
    first = dict(done.token)
    first_id = id_token_claims(world, first["id_token"], web, nonce=done.nonce)
    token_endpoint = world.discovery()["token_endpoint"]
    seen_refresh_tokens = {first["refresh_token"]}
    previous = first
    for _ in range(2):
        refreshed = dict(session.refresh_token(token_endpoint,
                                               refresh_token=previous["refresh_token"]))
        assert refreshed["refresh_token"] not in seen_refresh_tokens, "rotation"
        seen_refresh_tokens.add(refreshed["refresh_token"])
        assert refreshed["access_token"] != previous["access_token"]
        assert refreshed["expires_in"] == 300
        assert access_token_claims(world, refreshed["access_token"])["sub"] == alice
        claims = id_token_claims(world, refreshed["id_token"], web, nonce=None,
                                 access_token=refreshed["access_token"])
        assert claims["sub"] == alice
        assert claims["auth_time"] == first_id["auth_time"], "OIDC Core 12.2"
        assert world.read_datapoint(refreshed["access_token"]) == 200
        previous = refreshed


def test_refresh_token_replay_within_the_grace_window_succeeds(world, alice, web):
    """Realm node (grace 10 s): replaying a just-used refresh token at once still works."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    r1 = login(world, session, "alice").token["refresh_token"]
    token_endpoint = world.discovery()["token_endpoint"]
    r2 = session.refresh_token(token_endpoint, refresh_token=r1)["refresh_token"]
    assert r2 != r1
    replayed = session.refresh_token(token_endpoint, refresh_token=r1)
    assert world.read_datapoint(replayed["access_token"]) == 200


def test_refresh_token_replay_after_the_grace_window_revokes_the_family(world, strict):
    """Realm strict (grace 0 s): R1 -> R2; replaying R1 is 400 invalid_grant and R2 is then
    refused too."""
    session = world.session("strict-web", redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    seen = record_token_responses(session)
    done = login(world, session, "carol", realm="strict")
    assert access_token_claims(world, done.token["access_token"], "strict")["sub"] == strict
    token_endpoint = world.discovery("strict")["token_endpoint"]
    r1 = done.token["refresh_token"]
    r2 = session.refresh_token(token_endpoint, refresh_token=r1)["refresh_token"]
    assert r2 != r1
    with pytest.raises(OAuthError) as raised:
        session.refresh_token(token_endpoint, refresh_token=r1)
    assert_oauth_error(raised, "invalid_grant", seen[-1], 400)
    with pytest.raises(OAuthError) as raised:
        session.refresh_token(token_endpoint, refresh_token=r2)
    assert_oauth_error(raised, "invalid_grant", seen[-1], 400)


def test_unknown_refresh_token_is_invalid_grant(world, web):
    """A refresh token the server never issued: 400 invalid_grant in RFC 6749 JSON."""
    session = world.session(web)
    seen = record_token_responses(session)
    with pytest.raises(OAuthError) as raised:
        session.refresh_token(world.discovery()["token_endpoint"],
                              refresh_token=generate_token(43))
    assert_oauth_error(raised, "invalid_grant", seen[-1], 400)


# --- Userinfo ---

def test_userinfo_returns_the_profile_and_email_claims(world, alice, web):
    """userinfo with scope openid profile email: sub, preferred_username, name and email."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    login(world, session, "alice", scope="openid profile email")
    reply = session.get(world.discovery()["userinfo_endpoint"])
    assert reply.status_code == 200, reply.text
    info = reply.json()
    assert info["sub"] == alice
    assert info["preferred_username"] == "alice"
    assert info["email"] == "alice@example.com"
    assert info["name"] == "Alice Liddell"


def test_userinfo_without_the_email_scope_has_no_email(world, alice, web):
    """userinfo with scope openid profile: the profile claims, no email."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    login(world, session, "alice", scope="openid profile")
    reply = session.get(world.discovery()["userinfo_endpoint"])
    assert reply.status_code == 200, reply.text
    info = reply.json()
    assert info["sub"] == alice and info["preferred_username"] == "alice"
    assert "email" not in info


# --- Introspection (RFC 7662) ---

@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_introspection_describes_a_live_access_token(world, alice, web, rs, method):
    """A confidential client introspects another client's access token (basic or post): active,
    with claims matching the token."""
    user = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    access_token = login(world, user, "alice").token["access_token"]
    claims = access_token_claims(world, access_token)
    introspector = world.session("rs", rs, method=method)
    reply = introspector.introspect_token(world.discovery()["introspection_endpoint"],
                                          token=access_token, token_type_hint="access_token")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["active"] is True
    assert body["client_id"] == web
    assert body["username"] == "alice"
    assert body["sub"] == alice
    assert body["iss"] == world.issuer()
    assert body["aud"] == "portico" or "portico" in body["aud"]
    assert body["jti"] == claims["jti"]
    assert body["exp"] == claims["exp"] and body["iat"] == claims["iat"]
    assert set(body["scope"].split()) == set(claims["scope"].split())
    assert body["token_type"].lower() == "bearer"


@pytest.mark.parametrize("token", [
    "not-a-token",
    generate_token(43),
    # A well-formed JWT the server never issued.
    ".".join([tokenkit.json_b64url({"alg": "ES256", "typ": "at+jwt", "kid": "unknown"}),
              tokenkit.json_b64url({"sub": "nobody", "exp": 4102444800}),
              tokenkit.b64url(b"\0" * 64)]),
], ids=["garbage", "unknown-opaque", "foreign-jwt"])
def test_introspection_of_an_unknown_token_is_only_inactive(world, rs, token):
    """Garbage, unknown opaque and foreign JWT tokens: exactly {"active": false}."""
    introspector = world.session("rs", rs)
    reply = introspector.introspect_token(world.discovery()["introspection_endpoint"],
                                          token=token)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"active": False}


def test_introspection_requires_client_authentication(world, alice, web, rs):
    """No client authentication, a public client's bare client_id, or a wrong secret: 401."""
    user = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    access_token = login(world, user, "alice").token["access_token"]
    endpoint = world.discovery()["introspection_endpoint"]
    anonymous = requests.post(endpoint, data={"token": access_token}, timeout=30,
                              verify=world.portico.cert)
    assert anonymous.status_code == 401, anonymous.text
    public = world.session(web).introspect_token(endpoint, token=access_token)
    assert public.status_code == 401, public.text
    wrong = world.session("rs", "not-the-secret").introspect_token(endpoint, token=access_token)
    assert wrong.status_code == 401, wrong.text


def test_refresh_token_introspects_only_for_its_own_client(world, alice, backend, rs):
    """The client a refresh token was issued to sees it active; another client sees it
    inactive."""
    owner = world.session("backend", backend, redirect_uri=CONFIDENTIAL_REDIRECT)
    refresh_token = login(world, owner, "alice").token["refresh_token"]
    endpoint = world.discovery()["introspection_endpoint"]
    mine = owner.introspect_token(endpoint, token=refresh_token, token_type_hint="refresh_token")
    assert mine.status_code == 200, mine.text
    assert mine.json()["active"] is True
    assert mine.json()["client_id"] == "backend"
    assert mine.json()["sub"] == alice
    other = world.session("rs", rs).introspect_token(endpoint, token=refresh_token,
                                                     token_type_hint="refresh_token")
    assert other.status_code == 200, other.text
    assert other.json() == {"active": False}


# --- Revocation (RFC 7009) ---

def test_revoking_a_refresh_token_revokes_its_family(world, alice, backend):
    """Revoking R2 (after R1 -> R2): R2 is invalid_grant and introspects inactive, and R1,
    though still in its grace window, is refused too."""
    session = world.session("backend", backend, redirect_uri=CONFIDENTIAL_REDIRECT)
    seen = record_token_responses(session)
    document = world.discovery()
    r1 = login(world, session, "alice").token["refresh_token"]
    r2 = session.refresh_token(document["token_endpoint"], refresh_token=r1)["refresh_token"]
    reply = session.revoke_token(document["revocation_endpoint"], token=r2,
                                 token_type_hint="refresh_token")
    assert reply.status_code == 200, reply.text
    for refresh_token in (r2, r1):
        with pytest.raises(OAuthError) as raised:
            session.refresh_token(document["token_endpoint"], refresh_token=refresh_token)
        assert_oauth_error(raised, "invalid_grant", seen[-1], 400)
    introspected = session.introspect_token(document["introspection_endpoint"], token=r2,
                                            token_type_hint="refresh_token")
    assert introspected.status_code == 200
    assert introspected.json() == {"active": False}


def test_public_client_revokes_its_refresh_token(world, alice, web):
    """A public client revokes with its client_id only (auth method none): 200, and the refresh
    token is then invalid_grant."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    seen = record_token_responses(session)
    document = world.discovery()
    refresh_token = login(world, session, "alice").token["refresh_token"]
    assert session.revocation_endpoint_auth_method == "none"
    reply = session.revoke_token(document["revocation_endpoint"], token=refresh_token)
    assert reply.status_code == 200, reply.text
    with pytest.raises(OAuthError) as raised:
        session.refresh_token(document["token_endpoint"], refresh_token=refresh_token)
    assert_oauth_error(raised, "invalid_grant", seen[-1], 400)


def test_revoking_an_access_token_deactivates_it(world, alice, backend, rs):
    """A revoked access token introspects inactive and no longer reads the datapoint (401)."""
    owner = world.session("backend", backend, redirect_uri=CONFIDENTIAL_REDIRECT)
    access_token = login(world, owner, "alice").token["access_token"]
    document = world.discovery()
    introspector = world.session("rs", rs)
    before = introspector.introspect_token(document["introspection_endpoint"],
                                           token=access_token)
    assert before.json()["active"] is True
    assert world.read_datapoint(access_token) == 200
    reply = owner.revoke_token(document["revocation_endpoint"], token=access_token,
                               token_type_hint="access_token")
    assert reply.status_code == 200, reply.text
    after = introspector.introspect_token(document["introspection_endpoint"],
                                          token=access_token)
    assert after.status_code == 200
    assert after.json() == {"active": False}
    assert world.read_datapoint(access_token) == 401


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoking_an_unknown_token_answers_200(world, backend, hint):
    """RFC 7009 2.2: revoking a token the server does not know is still 200."""
    session = world.session("backend", backend)
    reply = session.revoke_token(world.discovery()["revocation_endpoint"],
                                 token=generate_token(43), token_type_hint=hint)
    assert reply.status_code == 200, reply.text


# --- Logout ---

def test_logout_redirects_with_state_and_revokes_that_login(world, alice, web):
    """RP-initiated logout: 303 to the post_logout_redirect_uri with state; that login's refresh
    token is then invalid_grant while another login of the same user keeps working."""
    document = world.discovery()
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    seen = record_token_responses(session)
    first = login(world, session, "alice")
    other = login(world, session, "alice")
    first_sid = id_token_claims(world, first.token["id_token"], web, nonce=first.nonce)["sid"]
    other_sid = id_token_claims(world, other.token["id_token"], web, nonce=other.nonce)["sid"]
    assert first_sid != other_sid, "two logins in two browsers are two sessions"

    url = add_params_to_uri(document["end_session_endpoint"], [
        ("id_token_hint", first.token["id_token"]),
        ("post_logout_redirect_uri", POST_LOGOUT),
        ("state", "xyz")])
    reply = first.browser.get(url, allow_redirects=False, timeout=30)
    assert reply.status_code == 303, f"{reply.status_code}: {reply.text}"
    location = reply.headers["Location"]
    assert location.split("?", 1)[0] == POST_LOGOUT
    assert query(location)["state"] == "xyz"

    with pytest.raises(OAuthError) as raised:
        session.refresh_token(document["token_endpoint"],
                              refresh_token=first.token["refresh_token"])
    assert_oauth_error(raised, "invalid_grant", seen[-1], 400)
    still = session.refresh_token(document["token_endpoint"],
                                  refresh_token=other.token["refresh_token"])
    assert world.read_datapoint(still["access_token"]) == 200


def test_id_token_signature_is_checked(world, alice, web):
    """The ID token validation above is not vacuous: a tampered ID token fails it."""
    session = world.session(web, redirect_uri=LOOPBACK_WITH_PORT, pkce=True)
    done = login(world, session, "alice")
    head, body, signature = done.token["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "mallory"
    forged = ".".join([head, tokenkit.json_b64url(claims), signature])
    with pytest.raises(BadSignatureError):
        id_token_claims(world, forged, web, nonce=done.nonce)
