"""Bearer tokens signed by two JOSE libraries written by others, PyJWT and jwcrypto, checked
against a running Portico; and the tokens Portico must refuse.

Who signs which algorithm (every key is generated at test time). Each library signs every
algorithm of Portico's that it supports, and every algorithm is signed by at least one of them;
`test_each_library_signs_every_algorithm_it_supports` checks this table against the libraries:

    algorithm                 PyJWT 2.15.1   jwcrypto 1.6.1
    HS256 HS384 HS512         yes            yes
    RS256 RS384 RS512         yes            yes
    PS256 PS384 PS512         yes            yes
    ES256 ES384 ES512         yes            yes
    ES256K (secp256k1)        yes            yes
    EdDSA, Ed25519 key        yes            yes
    EdDSA, Ed448 key          yes            yes
    Ed25519 (RFC 9864 name)   no (unknown)   yes
    Ed448 (RFC 9864 name)     no (unknown)   yes

How each issuer gets its key (see KEYS):

    hmac           hmac_secret                              HS256 HS384 HS512
    rsa-spki       public_key_file, SPKI "PUBLIC KEY"       RS256 PS256
    rsa-pkcs1      public_key_file, PKCS#1 "RSA PUBLIC KEY" RS384 PS384
    rsa-cert       public_key_file, X.509 "CERTIFICATE"     RS512 PS512
    es256-spki     public_key_file, SPKI                    ES256
    es384-cert     public_key_file, X.509 "CERTIFICATE"     ES384
    ed25519-spki   public_key_file, SPKI                    EdDSA / Ed25519
    rsa-jwk        jwks_url (kid, "alg": "RS256")           RS256
    es512-jwk      jwks_url (no kid, "alg": "ES512")        ES512
    ed25519-jwk    jwks_url (no kid, no alg)                EdDSA / Ed25519
    es256k-jwk     discovery = true (kid, no alg)           ES256K
    ed448-jwk      discovery = true (kid, no alg)           EdDSA / Ed448

Credentials that are not an RFC 6750 b64token at all (`=` inside the token, characters outside
its alphabet, two tokens) make the Authorization header malformed: 400 invalid_authorization.

The JWKS and the discovery document are served over HTTPS by a small server started here
(tokenkit.StaticHttpsServer, its self-signed certificate given to Portico as `ca_file`).
Tokens no library would make (alg `none`, bad base64url, DER ECDSA signatures, forbidden header
members, ...) are assembled here and signed with `cryptography` directly (tokenkit.raw_signature).
"""

import base64
import json
import os
import pathlib
import re
import secrets
import time
from dataclasses import dataclass

import jwcrypto.jwk
import jwcrypto.jws
import jwcrypto.jwt
import jwt
import jwt.algorithms
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

import tokenkit
from tokenkit import b64url, json_b64url

PORTICO_ALGS = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES256K", "ES384", "ES512", "EdDSA", "Ed25519", "Ed448",
}
PYJWT_ALGS = PORTICO_ALGS - {"Ed25519", "Ed448"}
JWCRYPTO_ALGS = set(PORTICO_ALGS)

AUDIENCE = "portico"
ENDPOINT = "/plant/temp"


@dataclass(frozen=True)
class KeySpec:
    make: object                 # () -> a private key (for HMAC: the secret's bytes)
    source: str                  # hmac | spki | pkcs1 | cert | jwks_url | discovery
    algorithms: tuple = ()       # the issuer's `algorithms` (hmac and PEM sources)
    kid: str | None = None       # JWKS keys only
    jwk_alg: str | None = None   # JWKS keys only: the JWK's own `alg`


KEYS = {
    "hmac": KeySpec(lambda: secrets.token_urlsafe(48).encode(), "hmac",
                    ("HS256", "HS384", "HS512")),
    "rsa-spki": KeySpec(lambda: rsa.generate_private_key(65537, 2048), "spki",
                        ("RS256", "PS256")),
    "rsa-pkcs1": KeySpec(lambda: rsa.generate_private_key(65537, 2048), "pkcs1",
                         ("RS384", "PS384")),
    "rsa-cert": KeySpec(lambda: rsa.generate_private_key(65537, 3072), "cert",
                        ("RS512", "PS512")),
    "es256-spki": KeySpec(lambda: ec.generate_private_key(ec.SECP256R1()), "spki", ("ES256",)),
    "es384-cert": KeySpec(lambda: ec.generate_private_key(ec.SECP384R1()), "cert", ("ES384",)),
    "ed25519-spki": KeySpec(ed25519.Ed25519PrivateKey.generate, "spki", ("Ed25519",)),
    "rsa-jwk": KeySpec(lambda: rsa.generate_private_key(65537, 2048), "jwks_url",
                       kid="rsa-rs256", jwk_alg="RS256"),
    "es512-jwk": KeySpec(lambda: ec.generate_private_key(ec.SECP521R1()), "jwks_url",
                         jwk_alg="ES512"),
    "ed25519-jwk": KeySpec(ed25519.Ed25519PrivateKey.generate, "jwks_url"),
    "es256k-jwk": KeySpec(lambda: ec.generate_private_key(ec.SECP256K1()), "discovery",
                          kid="k1"),
    "ed448-jwk": KeySpec(ed448.Ed448PrivateKey.generate, "discovery", kid="ed448"),
}

# (header alg, key): what the signing libraries are asked to sign.
ROUTES = [
    ("HS256", "hmac"), ("HS384", "hmac"), ("HS512", "hmac"),
    ("RS256", "rsa-spki"), ("PS256", "rsa-spki"),
    ("RS384", "rsa-pkcs1"), ("PS384", "rsa-pkcs1"),
    ("RS512", "rsa-cert"), ("PS512", "rsa-cert"),
    ("RS256", "rsa-jwk"),
    ("ES256", "es256-spki"), ("ES384", "es384-cert"), ("ES512", "es512-jwk"),
    ("ES256K", "es256k-jwk"),
    ("EdDSA", "ed25519-spki"), ("Ed25519", "ed25519-spki"),
    ("EdDSA", "ed25519-jwk"), ("Ed25519", "ed25519-jwk"),
    ("EdDSA", "ed448-jwk"), ("Ed448", "ed448-jwk"),
]


# --- The world: keys, the JWKS server and Portico ---

class World:
    def __init__(self, tmp, binary):
        self.keys = {name: spec.make() for name, spec in KEYS.items()}
        self.attacker = rsa.generate_private_key(65537, 2048)
        self.attacker_cert = tokenkit.self_signed(self.attacker, "attacker")
        self.certs = {name: tokenkit.self_signed(self.keys[name], name)
                      for name, spec in KEYS.items() if spec.source == "cert"}

        # The HTTPS server for key sets, bound now so that its URL can go into the config.
        server_key = ec.generate_private_key(ec.SECP256R1())
        self.server_cert_file = tmp / "jwks-server-cert.pem"
        self.server_cert_file.write_bytes(
            tokenkit.pem(tokenkit.self_signed(server_key, "jwks test server", ip="127.0.0.1")))
        server_key_file = tmp / "jwks-server-key.pem"
        server_key_file.write_bytes(tokenkit.private_key_pem(server_key))
        self.jwks = tokenkit.StaticHttpsServer(str(self.server_cert_file), str(server_key_file))
        url = self.jwks.url

        self.issuers, self.pem_text, blocks = {}, {}, []
        for name, spec in KEYS.items():
            if spec.source == "jwks_url":
                self.issuers[name] = url + "/direct"
            elif spec.source == "discovery":
                self.issuers[name] = url + "/oidc"
            else:
                self.issuers[name] = f"https://{name}.example"
                block = {"issuer": self.issuers[name], "audience": [AUDIENCE],
                         "algorithms": list(spec.algorithms)}
                if spec.source == "hmac":
                    block["hmac_secret"] = self.keys[name].decode()
                else:
                    self.pem_text[name] = (
                        tokenkit.spki_pem(self.keys[name]) if spec.source == "spki"
                        else tokenkit.pkcs1_pem(self.keys[name]) if spec.source == "pkcs1"
                        else tokenkit.pem(self.certs[name]))
                    path = tmp / f"{name}.pem"
                    path.write_bytes(self.pem_text[name])
                    block["public_key_file"] = str(path)
                blocks.append(block)
        blocks.append({"issuer": url + "/direct", "audience": [AUDIENCE],
                       "jwks_url": url + "/direct/jwks.json",
                       "ca_file": str(self.server_cert_file)})
        blocks.append({"issuer": url + "/oidc", "audience": [AUDIENCE], "discovery": True,
                       "ca_file": str(self.server_cert_file)})

        self.jwks.put_json("/direct/jwks.json", self.jwk_set("jwks_url"))
        self.jwks.put_json("/oidc/.well-known/openid-configuration",
                           {"issuer": url + "/oidc", "jwks_uri": url + "/oidc/jwks.json"})
        self.jwks.put_json("/oidc/jwks.json", self.jwk_set("discovery"))
        # What a token's `jku` / `x5u` header could point at; Portico must never fetch these.
        self.jwks.put_json("/attacker/jwks.json",
                           {"keys": [dict(public_jwk(self.attacker), kid="attacker")]})
        self.jwks.put("/attacker/cert.pem", "application/pem-certificate-chain",
                      tokenkit.pem(self.attacker_cert))
        self.jwks.put("/certs/rsa-cert.pem", "application/pem-certificate-chain",
                      tokenkit.pem(self.certs["rsa-cert"]))
        self.jwks.serve()

        config = tmp / "portico.toml"
        config.write_text(
            tokenkit.toml_table("datapoint", {"key": "plant.temp", "type": "float"})
            + tokenkit.toml_table("endpoint", {"path": ENDPOINT, "datapoint": "plant.temp",
                                               "read": ["plant:read"],
                                               "write": ["plant:write"]})
            + "".join(tokenkit.toml_table("issuer", block) for block in blocks))
        data_dir = tmp / "data"
        self.portico = tokenkit.Portico(binary, str(config), str(data_dir),
                                        str(tmp / "portico.log"))

    def jwk_set(self, source):
        keys = []
        for name, spec in KEYS.items():
            if spec.source == source:
                jwk = public_jwk(self.keys[name])
                if spec.kid:
                    jwk["kid"] = spec.kid
                if spec.jwk_alg:
                    jwk["alg"] = spec.jwk_alg
                keys.append(jwk)
        return {"keys": keys}

    def claims(self, key_name, **changes):
        """Good claims for the issuer of `key_name`; a change to None removes that claim."""
        now = int(time.time())
        claims = {"iss": self.issuers[key_name], "aud": AUDIENCE, "sub": "interop",
                  "iat": now, "exp": now + 600, "jti": secrets.token_hex(8),
                  "scope": "plant:read"}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def raw(self, key_name, header, claims=None, key=None):
        """A compact JWS signed by `cryptography` directly with the key (or `key`)."""
        claims = self.claims(key_name) if claims is None else claims
        key = self.keys[key_name] if key is None else key
        return tokenkit.compact(json_b64url(header), json_b64url(claims),
                                lambda data: tokenkit.raw_signature(header["alg"], key, data))

    def get(self, token=None, authorization=None):
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        if authorization is not None:
            headers["Authorization"] = authorization
        return requests.get(self.portico.url + ENDPOINT, headers=headers,
                            verify=self.portico.cert, timeout=30)

    def put(self, token, value):
        return requests.put(self.portico.url + ENDPOINT, json={"value": value},
                            headers={"Authorization": "Bearer " + token},
                            verify=self.portico.cert, timeout=30)


def public_jwk(private_key):
    return jwcrypto.jwk.JWK.from_pyca(private_key.public_key()).export_public(as_dict=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = pathlib.Path(__file__).resolve().parent.parent
    binary = os.environ.get("PORTICO_BIN", str(root / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("tokens"), binary)
    yield world
    world.jwks.close()
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"


# --- Signing with the libraries ---

def sign_pyjwt(world, alg, key_name, claims):
    kid = KEYS[key_name].kid
    return jwt.encode(claims, world.keys[key_name], algorithm=alg,
                      headers={"kid": kid} if kid else None)


def sign_jwcrypto(world, alg, key_name, claims):
    key = world.keys[key_name]
    if KEYS[key_name].source == "hmac":
        jwk = jwcrypto.jwk.JWK(kty="oct", k=b64url(key))
    else:
        jwk = jwcrypto.jwk.JWK.from_pyca(key)
    header = {"alg": alg, "typ": "JWT"}
    if KEYS[key_name].kid:
        header["kid"] = KEYS[key_name].kid
    token = jwcrypto.jwt.JWT(header=header, claims=claims)
    token.make_signed_token(jwk)
    return token.serialize()


SIGNERS = {"pyjwt": (sign_pyjwt, PYJWT_ALGS), "jwcrypto": (sign_jwcrypto, JWCRYPTO_ALGS)}

LIBRARY_CASES = [
    pytest.param(library, alg, key_name, id=f"{library}-{alg}-{key_name}")
    for library, (_, algs) in SIGNERS.items()
    for alg, key_name in ROUTES
    if alg in algs
]


def header_of(token):
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_each_library_signs_every_algorithm_it_supports():
    assert set(jwt.algorithms.get_default_algorithms()) & PORTICO_ALGS == PYJWT_ALGS
    assert set(jwcrypto.jws.default_allowed_algs) & PORTICO_ALGS == JWCRYPTO_ALGS
    assert PYJWT_ALGS | JWCRYPTO_ALGS == PORTICO_ALGS
    assert {alg for alg, _ in ROUTES} == PORTICO_ALGS
    # Each library signs EdDSA over both curves.
    cases = {tuple(case.values) for case in LIBRARY_CASES}
    for library in SIGNERS:
        assert {(library, "EdDSA", "ed25519-spki"), (library, "EdDSA", "ed448-jwk")} <= cases
    # PyJWT really lacks the RFC 9864 names (it signs Ed25519 and Ed448 keys as EdDSA only).
    for name in ("Ed25519", "Ed448"):
        with pytest.raises(NotImplementedError):
            jwt.encode({}, ed25519.Ed25519PrivateKey.generate(), algorithm=name)


@pytest.mark.parametrize("library,alg,key_name", LIBRARY_CASES)
def test_library_signed_token_is_accepted(world, library, alg, key_name):
    sign, _ = SIGNERS[library]
    token = sign(world, alg, key_name, world.claims(key_name))
    assert header_of(token)["alg"] == alg
    reply = world.get(token)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert {"value", "quality", "updateTime"} <= body.keys(), body


@pytest.mark.parametrize("alg,key_name", [("HS256", "hmac"), ("RS256", "rsa-spki"),
                                          ("ES256", "es256-spki"), ("EdDSA", "ed448-jwk")])
def test_raw_signer_control(world, alg, key_name):
    """The hand-made tokens below are signed by tokenkit.raw_signature: unspoilt, they pass."""
    kid = KEYS[key_name].kid
    header = {"alg": alg, "kid": kid} if kid else {"alg": alg}
    reply = world.get(world.raw(key_name, header))
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("alg,key_name", [("HS512", "hmac"), ("PS384", "rsa-pkcs1")])
def test_configured_key_without_kid_matches_any_kid(world, alg, key_name):
    token = jwt.encode(world.claims(key_name), world.keys[key_name], algorithm=alg,
                       headers={"kid": "some-kid-" + secrets.token_hex(4)})
    reply = world.get(token)
    assert reply.status_code == 200, reply.text


# --- Tokens Portico must refuse: 401 invalid_token ---

DESCRIPTION = r'[\x20\x21\x23-\x5b\x5d-\x7e]*'  # RFC 6750, section 3: error-description chars


def assert_invalid_token(reply):
    assert reply.status_code == 401, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "invalid_token", reply.text
    challenge = reply.headers["www-authenticate"]
    assert re.fullmatch(
        rf'Bearer realm="portico", error="invalid_token", error_description="{DESCRIPTION}"',
        challenge), challenge


def alg_none(w, name):
    return f"{json_b64url({'alg': name, 'typ': 'JWT'})}.{json_b64url(w.claims('hmac'))}."


def hmac_with_public_key_text(w, key_name):
    """Algorithm confusion: HS256 keyed with the issuer's PEM file, byte for byte."""
    return w.raw(key_name, {"alg": "HS256", "typ": "JWT"}, key=w.pem_text[key_name])


def attacker_signed(w, key_name, alg, extra_header):
    return w.raw(key_name, {"alg": alg, **extra_header(w)}, key=w.attacker)


def issuer_signed(w, key_name, alg, extra_header):
    kid = KEYS[key_name].kid
    return w.raw(key_name, {"alg": alg, **({"kid": kid} if kid else {}), **extra_header(w)})


def x5c(cert):
    return [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


HEADER_KEYS = {
    "jwk": ("rsa-spki", "RS256", lambda w: {"jwk": public_jwk(w.attacker)},
            lambda w: {"jwk": public_jwk(w.keys["rsa-spki"])}),
    "jku": ("rsa-jwk", "RS256",
            lambda w: {"jku": w.jwks.url + "/attacker/jwks.json", "kid": "attacker"},
            lambda w: {"jku": w.jwks.url + "/direct/jwks.json"}),
    "x5u": ("rsa-cert", "RS512", lambda w: {"x5u": w.jwks.url + "/attacker/cert.pem"},
            lambda w: {"x5u": w.jwks.url + "/certs/rsa-cert.pem"}),
    "x5c": ("rsa-cert", "RS512", lambda w: {"x5c": x5c(w.attacker_cert)},
            lambda w: {"x5c": x5c(w.certs["rsa-cert"])}),
}


def hmac_token(w, header=None, claims=None):
    return w.raw("hmac", header or {"alg": "HS256", "typ": "JWT"}, claims)


def with_literal_parts(w, header_part, payload_part):
    """HS256 over the parts exactly as written (so a lax decoder would find it valid)."""
    return tokenkit.compact(header_part, payload_part,
                            lambda data: tokenkit.raw_signature("HS256", w.keys["hmac"], data))


def first(make, accept, tries=1000):
    """The first value `make()` gives that `accept` takes (e.g. a part with a `-` in it)."""
    for _ in range(tries):
        value = make()
        if accept(value):
            return value
    raise AssertionError("no suitable value found")


def padded_header(w):
    header = first(lambda: json_b64url({"alg": "HS256", "kid": secrets.token_hex(
        secrets.randbelow(4) + 1)}), lambda part: len(part) % 4)
    return with_literal_parts(w, header + "=" * (-len(header) % 4), json_b64url(w.claims("hmac")))


def padded_payload(w):
    payload = first(lambda: json_b64url(w.claims("hmac", pad=secrets.token_hex(
        secrets.randbelow(4) + 1))), lambda part: len(part) % 4)
    return with_literal_parts(w, json_b64url({"alg": "HS256"}),
                              payload + "=" * (-len(payload) % 4))


def padded_signature(w):
    token = first(lambda: hmac_token(w), lambda t: len(t.split(".")[2]) % 4)
    return token + "=" * (-len(token.split(".")[2]) % 4)


def standard_alphabet_in_payload(w, url_char, std_char):
    # `~`, `?` and `>` are high in ASCII: runs of them encode to 6-bit groups 62 and 63.
    payload = first(lambda: json_b64url(w.claims("hmac", pad="".join(
        secrets.choice("~?>") for _ in range(8)))), lambda part: url_char in part)
    return with_literal_parts(w, json_b64url({"alg": "HS256"}),
                              payload.replace(url_char, std_char))


def standard_alphabet_in_signature(w, url_char, std_char):
    token = first(lambda: hmac_token(w), lambda t: url_char in t.split(".")[2])
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{signature.replace(url_char, std_char)}"


def der_ecdsa(w):
    key = w.keys["es256-spki"]
    return tokenkit.compact(json_b64url({"alg": "ES256"}), json_b64url(w.claims("es256-spki")),
                            lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))


def es384_from_p256_key(w):
    key = w.keys["es256-spki"]
    return tokenkit.compact(
        json_b64url({"alg": "ES384"}), json_b64url(w.claims("es256-spki")),
        lambda data: tokenkit.ecdsa_raw(key, hashes.SHA384(), data))


def es256_from_secp256k1_key(w):
    key = w.keys["es256k-jwk"]
    return tokenkit.compact(
        json_b64url({"alg": "ES256", "kid": "k1"}), json_b64url(w.claims("es256k-jwk")),
        lambda data: tokenkit.ecdsa_raw(key, hashes.SHA256(), data))


def sized_hmac_token(w, size):
    """A good HS256 token exactly `size` bytes long (a `pad` claim fills it up)."""
    for header in ({"alg": "HS256"}, {"alg": "HS256", "typ": "JWT"}):
        for length in range(size):
            token = hmac_token(w, header, w.claims("hmac", pad="x" * length))
            if len(token) == size:
                return token
            if len(token) > size:
                break
    raise AssertionError(f"no token of {size} bytes")


def tampered(w):
    head, _, signature = hmac_token(w).split(".")
    return f"{head}.{json_b64url(w.claims('hmac', scope='plant:read plant:admin'))}.{signature}"


REFUSED = [
    pytest.param(lambda w: alg_none(w, "none"), id="alg-none"),
    pytest.param(lambda w: alg_none(w, "None"), id="alg-None"),
    pytest.param(lambda w: alg_none(w, "NONE"), id="alg-NONE"),
    # An algorithm the key is not allowed, with a signature that is otherwise right.
    pytest.param(lambda w: w.raw("rsa-pkcs1", {"alg": "RS256"}), id="alg-not-pinned-pem-RS256"),
    pytest.param(lambda w: w.raw("rsa-spki", {"alg": "RS384"}), id="alg-not-pinned-pem-RS384"),
    pytest.param(es384_from_p256_key, id="alg-not-pinned-pem-ES384-by-P256"),
    pytest.param(lambda w: w.raw("rsa-jwk", {"alg": "PS256", "kid": "rsa-rs256"}),
                 id="alg-not-the-jwk-alg-PS256"),
    pytest.param(es256_from_secp256k1_key, id="alg-not-the-jwk-curve-ES256-by-secp256k1"),
    pytest.param(lambda w: w.raw("ed448-jwk", {"alg": "Ed25519", "kid": "ed448"}),
                 id="alg-not-the-jwk-curve-Ed25519-by-Ed448"),
    pytest.param(lambda w: w.raw("hmac", {"alg": "HS256"}, w.claims("rsa-spki")),
                 id="hmac-token-for-rsa-issuer"),
    *[pytest.param(lambda w, k=k: hmac_with_public_key_text(w, k), id=f"alg-confusion-HS256-{k}")
      for k in ("rsa-spki", "rsa-pkcs1", "rsa-cert", "es256-spki", "ed25519-spki")],
    *[pytest.param(lambda w, m=m: attacker_signed(w, *HEADER_KEYS[m][:2], HEADER_KEYS[m][2]),
                   id=f"header-{m}-attacker-key") for m in HEADER_KEYS],
    *[pytest.param(lambda w, m=m: issuer_signed(w, *HEADER_KEYS[m][:2], HEADER_KEYS[m][3]),
                   id=f"header-{m}-issuer-key") for m in HEADER_KEYS],
    pytest.param(lambda w: hmac_token(w, {"alg": "HS256", "crit": ["urn:example:flag"],
                                          "urn:example:flag": True}), id="crit-unknown"),
    pytest.param(lambda w: hmac_token(w, {"alg": "HS256", "crit": ["exp"], "exp": 1}),
                 id="crit-exp"),
    # With an encoded payload, b64=false and b64=true sign the very same bytes.
    pytest.param(lambda w: hmac_token(w, {"alg": "HS256", "b64": False, "crit": ["b64"]}),
                 id="b64-false-crit"),
    pytest.param(lambda w: hmac_token(w, {"alg": "HS256", "b64": False}), id="b64-false"),
    pytest.param(lambda w: sized_hmac_token(w, 8193), id="longer-than-8192-bytes"),
    # `=` only at the very end: still an RFC 6750 b64token, so it reaches the JWS parser.
    pytest.param(padded_signature, id="base64url-padding-in-signature"),
    pytest.param(lambda w: standard_alphabet_in_payload(w, "-", "+"), id="base64-plus-in-payload"),
    pytest.param(lambda w: standard_alphabet_in_payload(w, "_", "/"),
                 id="base64-slash-in-payload"),
    pytest.param(lambda w: standard_alphabet_in_signature(w, "-", "+"),
                 id="base64-plus-in-signature"),
    pytest.param(der_ecdsa, id="ecdsa-der-signature"),
    pytest.param(tampered, id="tampered-payload"),
    pytest.param(lambda w: hmac_token(w, claims=w.claims("hmac", iat=int(time.time()) - 7200,
                                                         exp=int(time.time()) - 3600)),
                 id="expired"),
    pytest.param(lambda w: hmac_token(w, claims=w.claims("hmac", exp=None)), id="no-exp"),
    pytest.param(lambda w: hmac_token(w, claims=w.claims("hmac", aud="someone-else")),
                 id="wrong-aud"),
    pytest.param(lambda w: hmac_token(w, claims=w.claims("hmac", aud=None)), id="no-aud"),
    pytest.param(lambda w: hmac_token(w, claims=w.claims("hmac", iss="https://unknown.example")),
                 id="wrong-iss"),
    pytest.param(lambda w: hmac_token(w, claims=w.claims("hmac", iss="https://hmac.example/")),
                 id="wrong-iss-trailing-slash"),
    pytest.param(lambda w: hmac_token(w, claims=w.claims("hmac", iss=None)), id="no-iss"),
]


@pytest.mark.parametrize("make", REFUSED)
def test_bad_token_is_refused(world, make):
    asked_before = len(world.jwks.requested)
    assert_invalid_token(world.get(make(world)))
    fetched = world.jwks.requested[asked_before:]
    assert not [p for p in fetched if p.startswith(("/attacker/", "/certs/"))], fetched


def test_token_of_exactly_8192_bytes_is_accepted(world):
    token = sized_hmac_token(world, 8192)
    assert len(token) == 8192
    reply = world.get(token)
    assert reply.status_code == 200, reply.text


# --- Permissions, missing and malformed credentials, writes ---

@pytest.mark.parametrize("claims", [
    pytest.param({"scope": "openid plant:read profile"}, id="scope"),
    pytest.param({"scope": None, "scp": ["plant:read"]}, id="scp"),
    pytest.param({"scope": None, "roles": ["plant:read"]}, id="roles"),
    pytest.param({"scope": None, "realm_access": {"roles": ["plant:read"]}},
                 id="realm_access.roles"),
])
def test_permission_claims_grant_read(world, claims):
    reply = world.get(sign_pyjwt(world, "HS256", "hmac", world.claims("hmac", **claims)))
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("scope", ["plant:write", "plant:reader", "plant", ""],
                         ids=["write-only", "reader", "prefix", "empty"])
def test_token_without_the_permission_is_forbidden(world, scope):
    reply = world.get(sign_jwcrypto(world, "ES256", "es256-spki",
                                    world.claims("es256-spki", scope=scope)))
    assert reply.status_code == 403, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "insufficient_scope"


def test_write_needs_the_write_permission(world):
    reply = world.put(sign_pyjwt(world, "HS256", "hmac", world.claims("hmac")), 2.5)
    assert reply.status_code == 403, reply.text
    assert reply.json()["code"] == "insufficient_scope"


def test_write_with_the_write_permission(world):
    writer = sign_pyjwt(world, "PS256", "rsa-spki", world.claims("rsa-spki", scope="plant:write"))
    reply = world.put(writer, 1.5)
    assert reply.status_code == 200, reply.text
    reader = sign_jwcrypto(world, "EdDSA", "ed448-jwk", world.claims("ed448-jwk"))
    read = world.get(reader)
    assert read.status_code == 200, read.text
    assert read.json()["value"] == 1.5


def test_no_token_is_challenged(world):
    reply = world.get()
    assert reply.status_code == 401, reply.text
    assert reply.headers["www-authenticate"] == 'Bearer realm="portico"'


# Credentials that are not an RFC 6750 (section 2.1) b64token, `1*( ALPHA / DIGIT / "-" / "." /
# "_" / "~" / "+" / "/" ) *"="`, make the Authorization header itself malformed: 400, not 401.
# That covers base64url padding inside the header or payload part (`=` followed by `.`).
MALFORMED = [
    pytest.param(lambda w: "Bearer a b", id="two-tokens"),
    pytest.param(lambda w: "Bearer " + padded_header(w), id="padding-in-header-part"),
    pytest.param(lambda w: "Bearer " + padded_payload(w), id="padding-in-payload-part"),
    pytest.param(lambda w: "Bearer " + hmac_token(w) + "*", id="character-outside-b64token"),
]


@pytest.mark.parametrize("make", MALFORMED)
def test_malformed_authorization_header(world, make):
    reply = world.get(authorization=make(world))
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "invalid_authorization"
