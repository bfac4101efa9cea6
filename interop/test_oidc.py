"""The built-in identity provider checked by clients written by others: Authlib (an OAuth 2.0 and
OpenID Connect client library) fetches client-credentials tokens and validates the discovery
document; PyJWT's PyJWKClient verifies Portico's tokens with the realm's published keys.

Clients are created with `portico admin` on the running server's data directory, as an operator
would. What this file does not cover yet (authorization code, refresh, introspection,
revocation) is not advertised in discovery either.
"""

import base64
import json
import os
import pathlib
import ssl

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENDPOINT = tokenkit.PROTECTED_ENDPOINT


class World(tokenkit.IdpWorld):
    def __init__(self, tmp: pathlib.Path, binary: str):
        super().__init__(tmp, binary)
        self.issuer = self.portico.url + "/realms/node"

    def client(self, client_id: str, *roles: str) -> str:
        args = ["client", "create", client_id]
        for role in roles:
            args += ["--role", role]
        out = self.admin(*args)
        return next(line.split(": ", 1)[1] for line in out.splitlines()
                    if line.startswith("client_secret: "))

    def session(self, client_id: str, secret: str, method: str) -> OAuth2Session:
        session = OAuth2Session(client_id, secret, token_endpoint_auth_method=method)
        # The sandbox's REQUESTS_CA_BUNDLE would override a verify set on the session.
        session.trust_env = False
        session.verify = self.portico.cert
        return session

    def discovery(self) -> dict:
        reply = requests.get(self.issuer + "/.well-known/openid-configuration",
                             verify=self.portico.cert, timeout=30)
        assert reply.status_code == 200
        return reply.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("oidc"), binary)
    yield world
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"


def test_authlib_accepts_the_discovery_document(world):
    document = world.discovery()
    assert document["issuer"] == world.issuer
    OpenIDProviderMetadata(document).validate()
    AuthorizationServerMetadata(document).validate()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials_token_reads_a_protected_datapoint(world, method):
    secret = world.client(f"gateway-{method}", "plant:read")
    session = world.session(f"gateway-{method}", secret, method)
    token = session.fetch_token(world.discovery()["token_endpoint"],
                                grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert "refresh_token" not in token, "client credentials get no refresh token"
    reply = session.get(world.portico.url + ENDPOINT, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["quality"] == "bad", "never written"


def test_authlib_sees_invalid_client_for_a_wrong_secret(world):
    world.client("gateway-wrong", "plant:read")
    session = world.session("gateway-wrong", "not-the-secret", "client_secret_basic")
    with pytest.raises(Exception) as raised:
        session.fetch_token(world.discovery()["token_endpoint"], grant_type="client_credentials")
    assert getattr(raised.value, "error", None) == "invalid_client", repr(raised.value)


def test_pyjwt_verifies_portico_tokens_with_the_published_keys(world):
    secret = world.client("gateway-pyjwt", "plant:read")
    session = world.session("gateway-pyjwt", secret, "client_secret_basic")
    document = world.discovery()
    access_token = session.fetch_token(document["token_endpoint"],
                                       grant_type="client_credentials")["access_token"]
    context = ssl.create_default_context(cafile=world.portico.cert)
    keys = jwt.PyJWKClient(document["jwks_uri"], ssl_context=context)
    signing_key = keys.get_signing_key_from_jwt(access_token)
    claims = jwt.decode(access_token, signing_key.key, algorithms=["ES256"],
                        audience="portico", issuer=world.issuer,
                        options={"require": ["exp", "iat", "sub", "jti"]})
    assert claims["client_id"] == "gateway-pyjwt"
    assert claims["sub"] == "gateway-pyjwt"
    assert claims["realm_access"]["roles"] == ["plant:read"]
    # RFC 9068: PyJWT does not check typ, so this test does.
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    # Every published key is usable by PyJWT (kid, use sig, alg as PyJWT names it).
    jwks = requests.get(document["jwks_uri"], verify=world.portico.cert, timeout=30).json()
    assert {k["alg"] for k in jwks["keys"]} == {"ES256", "RS256"}
    for key in jwks["keys"]:
        assert jwt.PyJWK(key).key_id == key["kid"]
        assert key["use"] == "sig"
    # A tampered token does not verify.
    head, body, sig = access_token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["realm_access"]["roles"] = ["portico:admin"]
    tampered = ".".join([head, tokenkit.b64url(json.dumps(forged).encode()), sig])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, signing_key.key, algorithms=["ES256"], audience="portico")
    reply = requests.get(world.portico.url + ENDPOINT, verify=world.portico.cert, timeout=30,
                         headers={"Authorization": f"Bearer {tampered}"})
    assert reply.status_code == 401
