"""Helpers for test_tokens.py: base64url, raw JWS signing with `cryptography`, X.509 certificates,
a small HTTPS server for JWKS and OpenID discovery documents, and a `portico serve` process."""

import base64
import datetime
import hashlib
import hmac
import json
import os
import signal
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515, section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_b64url(value) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


# --- Raw JWS signatures, for tokens no JOSE library will produce (malformed on purpose) ---

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def raw_signature(alg: str, key, signing_input: bytes) -> bytes:
    """The JWS signature over `signing_input` (RFC 7518, RFC 8037) for every algorithm tested."""
    family, bits = alg[:2], alg[2:]
    if family == "HS":
        return hmac.new(key, signing_input, getattr(hashlib, "sha" + bits)).digest()
    if family == "RS":
        return key.sign(signing_input, padding.PKCS1v15(), HASHES[bits]())
    if family == "PS":
        digest = HASHES[bits]()
        return key.sign(signing_input, padding.PSS(padding.MGF1(digest), digest.digest_size),
                        digest)
    if family == "ES":
        return ecdsa_raw(key, HASHES[bits[:3]](), signing_input)
    if alg in ("EdDSA", "Ed25519", "Ed448"):
        return key.sign(signing_input)
    raise ValueError(f"no raw signer for {alg}")


def ecdsa_raw(key: ec.EllipticCurvePrivateKey, digest, signing_input: bytes) -> bytes:
    """ECDSA as JWS wants it: R || S, each the curve's size (RFC 7518, section 3.4)."""
    r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def compact(header_part: str, payload_part: str, sign) -> str:
    """`header.payload.signature`, the signature computed by `sign` over the parts as given."""
    signature = sign(f"{header_part}.{payload_part}".encode("ascii"))
    return f"{header_part}.{payload_part}.{b64url(signature)}"


# --- Certificates ---

def self_signed(key, common_name: str, ip: str | None = None) -> x509.Certificate:
    """A self-signed end-entity certificate for `key` (valid now, for one day)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if ip is not None:
        builder = (
            builder
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(ip))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
        )
    digest = hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) and \
        key.curve.key_size == 384 else hashes.SHA256()
    return builder.sign(key, digest)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# --- A small HTTPS server for key sets and discovery documents ---

class StaticHttpsServer:
    """Serves fixed JSON/PEM documents over HTTPS from a thread, and records every path asked.

    It is bound (and so has its URL) as soon as it is made; `serve()` starts answering."""

    def __init__(self, cert_file: str, key_file: str):
        self.documents: dict[str, tuple[str, bytes]] = {}
        self.requested: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requested.append(self.path)
                content_type, body = server.documents.get(self.path, ("text/plain", None))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def put_json(self, path: str, value) -> None:
        self.documents[path] = ("application/json", json.dumps(value).encode())

    def put(self, path: str, content_type: str, body: bytes) -> None:
        self.documents[path] = (content_type, body)

    def serve(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- Portico ---

def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def toml_table(name: str, fields: dict) -> str:
    lines = [f"[[{name}]]"] + [f"{k} = {toml_value(v)}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def toml_section(name: str, fields: dict) -> str:
    """A plain `[name]` table (toml_table writes an array-of-tables entry, `[[name]]`)."""
    lines = [f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def portico_admin(binary: str, data_dir, *args: str, stdin: str | None = None) -> str:
    """Runs `portico admin --data-dir DIR ARGS…` and returns its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTICO_")}
    done = subprocess.run([binary, "admin", "--data-dir", str(data_dir), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, f"portico admin {' '.join(args)}: {done.stderr}"
    return done.stdout


def client_credentials_token(binary: str, data_dir, url: str, cert: str, client_id: str,
                             *roles: str) -> str:
    """A client-credentials token of a new client of the `node` realm with `roles`."""
    args = ["client", "create", client_id]
    for role in roles:
        args += ["--role", role]
    out = portico_admin(binary, data_dir, *args)
    secret = next(line.split(": ", 1)[1].strip() for line in out.splitlines()
                  if line.startswith("client_secret: "))
    reply = requests.post(url + "/realms/node/protocol/openid-connect/token",
                          data={"grant_type": "client_credentials"},
                          auth=(client_id, secret), verify=cert, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


class Portico:
    """`portico serve` on 127.0.0.1:0; its URL is read from the first line it prints.

    The banner must announce `scheme` ("https" by default; "http" for a configuration with
    `[tls] enabled = false`). `overrides` are configuration settings as environment variables
    (`PORTICO_SECTION__KEY`)."""

    def __init__(self, binary: str, config_file: str, data_dir: str, log_file: str,
                 scheme: str = "https", overrides: dict | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTICO_")}
        env["PORTICO_LOG__LEVEL"] = "warn"
        env.update(overrides or {})
        self.log_file = log_file
        with open(log_file, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "serve", "--config", config_file, "--data-dir", data_dir,
                 "--listen", "127.0.0.1:0"],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env,
            )
        banner = self.process.stdout.readline()  # "Portico x.y.z listening on https://..."
        self.url = next((w for w in banner.split() if w.startswith(scheme + "://")), None)
        if self.url is None:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"no URL in the banner {banner!r}; log:\n{self.log()}")
        self.cert = os.path.join(data_dir, "tls", "cert.pem")

    def log(self) -> str:
        with open(self.log_file, encoding="utf-8", errors="replace") as log:
            return log.read()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def private_key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def spki_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def pkcs1_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.PKCS1)


# --- A running Portico with its identity provider, managed by `portico admin` ---

PROTECTED_ENDPOINT = "/api/v1/plant/temperature"


class IdpWorld:
    """`portico serve` with one protected endpoint (`PROTECTED_ENDPOINT`, read needs the role
    plant:read) and `portico admin` on its data directory. `throttle=False` raises the failure
    limits for suites that fail logins on purpose faster than the default throttle forgives."""

    def __init__(self, tmp, binary: str, *, throttle: bool = True):
        self.binary = binary
        self.tmp = tmp
        self.data_dir = tmp / "data"
        config = tmp / "portico.toml"
        text = (toml_table("datapoint", {"key": "plant.temp", "type": "float"})
                + toml_table("endpoint", {"path": PROTECTED_ENDPOINT, "datapoint": "plant.temp",
                                          "read": ["plant:read"]}))
        if not throttle:
            text += "[idp.throttle]\nip_burst = 1000\naccount_burst = 1000\n"
        config.write_text(text)
        self.portico = Portico(binary, str(config), str(self.data_dir), str(tmp / "portico.log"))
        self.url = self.portico.url

    def admin(self, *args: str, stdin: str | None = None) -> str:
        return portico_admin(self.binary, self.data_dir, *args, stdin=stdin)
