"""Value proofs and checkpoints checked by a verifier written from the README alone ("Streams,
values and proofs": "Checking a value yourself" steps 1-5, the two byte-layout tables and
"Checkpoints"), in Python with `hashlib`, `base64`, `uuid`, `struct` and `cryptography` only, no
Portico code:

- RFC 9162 Merkle trees: leaf and node hashes, the inclusion fold (section 2.1.3.2) and the
  consistency-proof verification (section 2.1.4.2), themselves checked first against proofs this
  file generates from the RFC's own definitions (MTH, PATH, PROOF/SUBPROOF in 2.1.1-2.1.4.1);
- a value's leaf (stream UUID bytes, signed big-endian microseconds, the stored bytes) built from
  what this test wrote, not from what Portico answers, folded up to the proof's root; the root's
  signature checked for each of the four proof kinds with the key from the JWK set;
- the log of roots: the 64-byte log leaf folded up to the checkpoint's root, and the checkpoint,
  a C2SP signed note, checked with Ed25519 against the verifier key (`name+keyid+base64`), whose
  key ID is recomputed; consistency proofs between every two checkpoints seen, and every
  checkpoint's root recomputed from all the trees this file wrote;
- the Tributech surface (`/demeter/api/proofhistory`, `/demeter/api/validate`) agreeing with the
  native proof.

Negative checks: a changed value, a wrong leaf index, a changed root, a changed note and altered
consistency proofs must all fail.

Each test polls (every 50 ms, up to 20 s) for what is signed asynchronously: trees closing and
checkpoints being signed.
"""

import base64
import datetime
import hashlib
import os
import pathlib
import struct
import time
import uuid

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

import tokenkit

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOG_ORIGIN = "interop.example/portico/proofs"
PROOF_KINDS = ["SHA256_RSA2048_PSS", "SHA256_RSA2048_PKCS1", "SHA256_ECDSAP256_RFC3279",
               "SHA256_ECDSAP256_IEEEP1363"]
DEPTH = 2
TREE = 2 ** DEPTH  # values per tree
POLL_SECONDS = 0.05
DEADLINE_SECONDS = 20
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
EM_DASH = "\u2014"


# --- RFC 9162, section 2.1 ---

def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00", leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01", left, right)


def fold_inclusion(hash_: bytes, index: int, size: int, path: list) -> bytes | None:
    """The root the audit path leads to from leaf `index`'s hash (README step 2, RFC 9162
    section 2.1.3.2), or None when the path does not fit the tree (`s` not 0 at the end)."""
    if not 0 <= index < size:  # RFC 9162 2.1.3.2 step 1 (the README leaves it out)
        return None
    f, s = index, size - 1
    for p in path:
        if s == 0:
            return None
        if f % 2 == 1 or f == s:
            hash_ = node_hash(p, hash_)
            while f % 2 == 0 and f != 0:
                f, s = f >> 1, s >> 1
        else:
            hash_ = node_hash(hash_, p)
        f, s = f >> 1, s >> 1
    return hash_ if s == 0 else None


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       path: list) -> bool:
    """RFC 9162 section 2.1.4.2: does the tree of `second` leaves extend the one of `first`?"""
    if first == second:
        return path == [] and first_hash == second_hash
    if not 0 < first < second or not path:
        return False
    if first & (first - 1) == 0:  # an exact power of 2
        path = [first_hash] + list(path)
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_hash and sr == second_hash and sn == 0


# The RFC's definitions, to generate proofs that check the two verifiers above.

def split_point(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaf_hashes: list) -> bytes:
    """MTH(D[n]) over already hashed leaves (RFC 9162 section 2.1.1)."""
    if not leaf_hashes:
        return sha256()
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = split_point(len(leaf_hashes))
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def reference_path(m: int, leaf_hashes: list) -> list:
    """PATH(m, D[n]) (RFC 9162 section 2.1.3.1)."""
    n = len(leaf_hashes)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return reference_path(m, leaf_hashes[:k]) + [mth(leaf_hashes[k:])]
    return reference_path(m - k, leaf_hashes[k:]) + [mth(leaf_hashes[:k])]


def reference_consistency(m: int, leaf_hashes: list, complete: bool = True) -> list:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (RFC 9162 section 2.1.4.1)."""
    n = len(leaf_hashes)
    if m == n:
        return [] if complete else [mth(leaf_hashes)]
    k = split_point(n)
    if m <= k:
        return reference_consistency(m, leaf_hashes[:k], complete) + [mth(leaf_hashes[k:])]
    return reference_consistency(m - k, leaf_hashes[k:], False) + [mth(leaf_hashes[:k])]


def flipped(data: bytes, bit: int = 0) -> bytes:
    """`data` with one bit inverted."""
    return data[:bit // 8] + bytes([data[bit // 8] ^ (1 << (bit % 8))]) + data[bit // 8 + 1:]


# --- The README's byte layouts ---

def uuid_bytes(stream_id: str) -> bytes:
    """The UUID's 16 bytes in the order its hex digits are written."""
    return uuid.UUID(stream_id).bytes


def value_leaf(stream_id: str, micros: int, value: bytes) -> bytes:
    """A value's leaf: stream id, timestamp (microseconds, signed 64-bit big-endian), value."""
    return uuid_bytes(stream_id) + struct.pack(">q", micros) + value


def log_leaf(stream_id: str, last_micros: int, size: int, root: bytes) -> bytes:
    """A leaf of the log of roots: 64 bytes."""
    leaf = uuid_bytes(stream_id) + struct.pack(">qQ", last_micros, size) + root
    assert len(leaf) == 64
    return leaf


def double_bytes(value: float) -> bytes:
    """A DOUBLE as .NET's BitConverter writes it: 8 bytes little-endian."""
    return struct.pack("<d", value)


def rfc3339(micros: int, offset_minutes: int = 0) -> str:
    """The instant `micros` after the epoch as RFC 3339 with six fraction digits, written in the
    given offset (`Z` for UTC)."""
    moment = EPOCH + datetime.timedelta(microseconds=micros)
    if offset_minutes == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    zone = datetime.timezone(datetime.timedelta(minutes=offset_minutes))
    return moment.astimezone(zone).isoformat(timespec="microseconds")


def micros_of(text: str) -> int:
    return (datetime.datetime.fromisoformat(text) - EPOCH) // datetime.timedelta(microseconds=1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- Keys and signatures ---

def jwk_public_key(jwk: dict):
    """A `cryptography` public key from an RSA or P-256 JWK (RFC 7518 section 6)."""
    if jwk["kty"] == "RSA":
        n = int.from_bytes(unb64url(jwk["n"]), "big")
        e = int.from_bytes(unb64url(jwk["e"]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if jwk["kty"] == "EC":
        assert jwk["crv"] == "P-256", jwk
        x = int.from_bytes(unb64url(jwk["x"]), "big")
        y = int.from_bytes(unb64url(jwk["y"]), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    raise AssertionError(f"not a proof key: {jwk}")


def root_signature_verifies(proof_kind: str, key, signature: bytes, root: bytes) -> bool:
    """Is `signature` the proof kind's signature over the 32 bytes of `root`?"""
    try:
        if proof_kind == "SHA256_RSA2048_PSS":
            key.verify(signature, root,
                       padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                       hashes.SHA256())
        elif proof_kind == "SHA256_RSA2048_PKCS1":
            key.verify(signature, root, padding.PKCS1v15(), hashes.SHA256())
        elif proof_kind == "SHA256_ECDSAP256_RFC3279":
            key.verify(signature, root, ec.ECDSA(hashes.SHA256()))
        elif proof_kind == "SHA256_ECDSAP256_IEEEP1363":
            if len(signature) != 64:
                return False
            der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                             int.from_bytes(signature[32:], "big"))
            key.verify(der, root, ec.ECDSA(hashes.SHA256()))
        else:
            raise AssertionError(f"unknown proof kind {proof_kind}")
    except InvalidSignature:
        return False
    return True


def note_key_id(name: str, public_key: bytes) -> bytes:
    """The first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key)."""
    return sha256(name.encode("utf-8"), b"\n", b"\x01", public_key)[:4]


class VerifierKey:
    """`<name>+<key ID, hex>+<base64(0x01 || public key)>`; the base64 may itself hold `+`."""

    def __init__(self, text: str):
        self.name, key_id_hex, encoded = text.strip().split("+", 2)
        self.key_id = bytes.fromhex(key_id_hex)
        assert len(self.key_id) == 4, f"the key ID is 4 bytes: {text!r}"
        blob = unb64(encoded)
        assert len(blob) == 33 and blob[0] == 0x01, f"not 0x01 || Ed25519 key: {text!r}"
        self.public_bytes = blob[1:]
        self.public_key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_bytes)


class Note:
    """A C2SP signed note holding a tlog-checkpoint: origin, size, root; then signature lines."""

    def __init__(self, text: str):
        self.text = text
        body, separator, signatures = text.partition("\n\n")
        assert separator and text.endswith("\n"), f"not a signed note: {text!r}"
        lines = body.split("\n")
        assert len(lines) == 3, f"a checkpoint note has three lines: {text!r}"
        self.origin, size, root = lines
        self.size = int(size)
        assert str(self.size) == size, f"size line {size!r}"
        self.root = unb64(root)
        assert len(self.root) == 32
        self.signed = (body + "\n").encode("utf-8")
        self.signatures = []
        for line in signatures[:-1].split("\n"):
            assert line.startswith(EM_DASH + " "), f"signature line {line!r}"
            name, encoded = line[2:].split(" ")
            blob = unb64(encoded)
            self.signatures.append((name, blob[:4], blob[4:]))


def note_verifies(text: str, key: VerifierKey) -> bool:
    """Does a signature line by `key` (its name and key ID) verify over the first three lines?"""
    note = Note(text)
    for name, key_id, signature in note.signatures:
        if name == key.name and key_id == key.key_id and len(signature) == 64:
            try:
                key.public_key.verify(signature, note.signed)
                return True
            except InvalidSignature:
                return False
    return False


# --- Polling ---

def poll(what: str, probe, timeout: float = DEADLINE_SECONDS):
    """Calls `probe` every 50 ms until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(POLL_SECONDS)


# --- Portico with an origin of its own, and the trees this file wrote ---

class Tree:
    """A closed tree this test wrote: its stream and its values (micros, bytes) in order."""

    def __init__(self, stream_id: str, values: list):
        self.stream_id = stream_id
        self.values = values

    def root(self) -> bytes:
        return mth([leaf_hash(value_leaf(self.stream_id, m, v)) for m, v in self.values])

    def log_leaf(self) -> bytes:
        return log_leaf(self.stream_id, self.values[-1][0], len(self.values), self.root())


class World:
    def __init__(self, tmp: pathlib.Path, binary: str):
        self.data_dir = tmp / "data"
        config = tmp / "portico.toml"
        config.write_text(tokenkit.toml_section("values", {"log_origin": LOG_ORIGIN}))
        self.portico = tokenkit.Portico(binary, str(config), str(self.data_dir),
                                        str(tmp / "portico.log"))
        self.url = self.portico.url
        self.token = tokenkit.client_credentials_token(binary, self.data_dir, self.url,
                                                       self.portico.cert, "proof-admin",
                                                       "portico:admin")
        self.trees: list[Tree] = []  # every tree this file closed, in the order written
        self.notes: dict[int, str] = {}  # every checkpoint seen, by size

    def api(self, method: str, path: str, body=None, params=None) -> requests.Response:
        return requests.request(method, self.url + path, json=body, params=params,
                                verify=self.portico.cert, timeout=30,
                                headers={"Authorization": f"Bearer {self.token}"})

    def create_stream(self, proof_kind: str | None) -> dict:
        body = {"name": f"proofs {proof_kind}", "encoding": "DOUBLE", "merkleTreeDepth": DEPTH}
        if proof_kind is not None:
            body["proofKind"] = proof_kind
        reply = self.api("POST", "/api/v1/streams", body)
        assert reply.status_code == 201, reply.text
        return reply.json()

    def write_doubles(self, stream_id: str, values: list) -> None:
        """Writes `[(micros, offset minutes, float)]` through the Tributech API and records the
        trees they close (whole trees only: callers write multiples of TREE)."""
        assert len(values) % TREE == 0
        body = [{"streamId": stream_id, "timestamp": rfc3339(m, offset), "value": v}
                for m, offset, v in values]
        reply = self.api("POST", "/demeter/api/values/double", body)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"insertedCount": len(values)}, reply.text
        for start in range(0, len(values), TREE):
            self.trees.append(Tree(stream_id, [(m, double_bytes(v))
                                               for m, _, v in values[start:start + TREE]]))

    def proof(self, stream_id: str, micros: int) -> dict:
        """The value's inclusion proof, once its tree is closed and a checkpoint covers it."""
        path = f"/api/v1/streams/{stream_id}/values/{rfc3339(micros)}/proof"

        def checkpointed():
            reply = self.api("GET", path)
            if reply.status_code == 200 and reply.json().get("checkpoint") is not None:
                return reply.json()
            assert reply.status_code in (200, 409), reply.text  # 409: the tree is still open
            return None
        answer = poll(f"a checkpointed proof of {path}", checkpointed)
        self.notes[answer["checkpoint"]["logSize"]] = answer["checkpoint"]["note"]
        return answer

    def latest_checkpoint(self, at_least: int) -> Note:
        """The latest checkpoint, once the log holds at least `at_least` roots."""
        def grown():
            reply = requests.get(self.url + "/api/v1/checkpoints/latest",
                                 verify=self.portico.cert, timeout=30)
            if reply.status_code == 200:
                assert reply.headers["content-type"].startswith("text/plain"), reply.headers
                note = Note(reply.text)
                if note.size >= at_least:
                    return note
            return None
        note = poll(f"a checkpoint of {at_least} roots", grown)
        self.notes[note.size] = note.text
        return note

    def proof_keys(self) -> dict:
        reply = requests.get(self.url + "/api/v1/proofs/keys", verify=self.portico.cert,
                             timeout=30)
        assert reply.status_code == 200, reply.text
        return {key["kid"]: key for key in reply.json()["keys"]}

    def checkpoint_key(self) -> VerifierKey:
        reply = requests.get(self.url + "/api/v1/checkpoints/key", verify=self.portico.cert,
                             timeout=30)
        assert reply.status_code == 200, reply.text
        return VerifierKey(reply.text)

    def consistency(self, first: int, second: int) -> list:
        reply = requests.get(self.url + "/api/v1/checkpoints/consistency",
                             params={"from": first, "to": second}, verify=self.portico.cert,
                             timeout=30)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["from"] == first and body["to"] == second, body
        return [unb64(h) for h in body["proof"]]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    world = World(tmp_path_factory.mktemp("proofs"), binary)
    yield world
    assert world.portico.stop() == 0, "graceful shutdown on SIGTERM exits 0"
    world.portico.process.stdout.close()


def values_across_the_epoch(count: int, first_value: float) -> list:
    """`count` values 1.5 s apart from 1969-12-31T23:59:57.000001Z (negative microseconds
    first), written in turn as Z, +01:00 and -05:30, the fraction digits all used."""
    offsets = [0, 60, -330]
    return [(-2_999_999 + i * 1_500_000 + i * 7, offsets[i % 3], first_value + i * 0.125)
            for i in range(count)]


# --- The verifier itself, against the RFC's definitions ---

def test_own_rfc9162_verifiers_accept_generated_proofs_and_refuse_altered_ones():
    hashes_ = [leaf_hash(bytes([i]) * (i + 1)) for i in range(13)]
    for n in range(1, 14):
        leaves, root = hashes_[:n], mth(hashes_[:n])
        for m in range(n):
            path = reference_path(m, leaves)
            assert fold_inclusion(leaves[m], m, n, path) == root, (m, n)
            assert fold_inclusion(flipped(leaves[m]), m, n, path) != root, (m, n)
            if n > 1:
                assert fold_inclusion(leaves[m], (m + 1) % n, n, path) != root, (m, n)
                assert fold_inclusion(leaves[m], m, n, path[:-1]) != root, (m, n)
            assert fold_inclusion(leaves[m], m, n, path + [root]) is None, (m, n)
        for m in range(1, n + 1):
            old = mth(hashes_[:m])
            proof = reference_consistency(m, leaves)
            assert verify_consistency(m, n, old, root, proof), (m, n)
            if m == n:
                assert proof == []
                continue
            assert not verify_consistency(m, n, root, old, proof), (m, n)
            assert not verify_consistency(m, n, old, root, proof[:-1]), (m, n)
            assert not verify_consistency(m, n, old, root, proof + [root]), (m, n)
            assert not verify_consistency(m, n, old, root, []), (m, n)
            for i in range(len(proof)):
                altered = proof[:i] + [flipped(proof[i], 77)] + proof[i + 1:]
                assert not verify_consistency(m, n, old, root, altered), (m, n, i)


def test_double_bytes_match_the_readme_example():
    assert b64(double_bytes(2.3)) == "ZmZmZmZmAkA="
    assert rfc3339(-1_000_001) == "1969-12-31T23:59:58.999999Z"
    assert micros_of(rfc3339(-1_000_001, 60)) == -1_000_001


# --- A value, checked yourself (README steps 1-5) ---

def check_value_proof(answer: dict, stream_id: str, micros: int, value: bytes, index: int,
                      tree: Tree, keys: dict, checkpoint_key: VerifierKey) -> None:
    """Steps 1-5 for the value this test wrote at `micros`, the `index`-th of `tree`."""
    assert answer["streamId"] == stream_id
    assert answer["timestamp"] == rfc3339(micros), answer["timestamp"]
    assert answer["timestampMicros"] == micros, "microseconds since the epoch, signed"
    assert unb64(answer["value"]) == value, "the value's bytes as stored (little-endian)"
    # Step 1, from what was written.
    h = leaf_hash(value_leaf(stream_id, micros, value))
    assert unb64(answer["leafHash"]) == h, "leafHash is SHA-256(0x00 || leaf)"
    # Step 2.
    assert (answer["leafIndex"], answer["treeSize"]) == (index, len(tree.values))
    path = [unb64(p) for p in answer["auditPath"]]
    proof = answer["proof"]
    root = unb64(proof["rootHash"])
    assert fold_inclusion(h, index, answer["treeSize"], path) == root, \
        "the audit path does not lead to proof.rootHash"
    assert root == tree.root(), "the root is not the MTH of the values written"
    assert proof["merkleTreeDepth"] == DEPTH
    assert proof["firstTimestamp"] == rfc3339(tree.values[0][0])
    assert proof["lastTimestamp"] == rfc3339(tree.values[-1][0])
    assert proof["lastTimestampMicros"] == tree.values[-1][0]
    # Step 3.
    jwk = keys.get(proof["keyId"])
    assert jwk is not None, f"keyId {proof['keyId']} is not in /api/v1/proofs/keys"
    assert jwk.get("proofKind") == proof["proofKind"], jwk
    assert root_signature_verifies(proof["proofKind"], jwk_public_key(jwk),
                                   unb64(proof["signature"]), root), \
        f"the {proof['proofKind']} signature over the root does not verify"
    # Step 4.
    checkpoint = answer["checkpoint"]
    note = Note(checkpoint["note"])
    assert note.origin == LOG_ORIGIN
    assert note.size == checkpoint["logSize"], "the note's second line is logSize"
    expected_leaf = log_leaf(stream_id, proof["lastTimestampMicros"], answer["treeSize"], root)
    assert expected_leaf == tree.log_leaf()
    log_path = [unb64(p) for p in checkpoint["logPath"]]
    assert fold_inclusion(leaf_hash(expected_leaf), checkpoint["logIndex"],
                          checkpoint["logSize"], log_path) == note.root, \
        "the log path does not lead to the note's root"
    # Step 5.
    assert note_verifies(checkpoint["note"], checkpoint_key), "the note's signature"


def check_checkpoint_key(world: World, keys: dict) -> VerifierKey:
    """The verifier key's ID is recomputed, and it is the JWK with purpose checkpoint."""
    key = world.checkpoint_key()
    assert key.name == LOG_ORIGIN
    assert note_key_id(key.name, key.public_bytes) == key.key_id, \
        "the key ID is not SHA-256(name || 0x0A || 0x01 || key)[:4]"
    published = [k for k in keys.values() if k.get("purpose") == "checkpoint"]
    assert [unb64url(k["x"]) for k in published] == [key.public_bytes], published
    assert published[0]["kty"] == "OKP" and published[0]["crv"] == "Ed25519"
    return key


@pytest.mark.parametrize("proof_kind", PROOF_KINDS)
def test_value_proof_verifies_from_the_readme_alone(world, proof_kind):
    stream = world.create_stream(proof_kind)
    assert stream["proofKind"] == proof_kind and stream["merkleTreeDepth"] == DEPTH, stream
    stream_id = stream["id"]
    written = values_across_the_epoch(2 * TREE, 20.5)
    world.write_doubles(stream_id, written)
    trees = world.trees[-2:]
    answers = [(tree, i, world.proof(stream_id, m)) for tree in trees
               for i, (m, _) in enumerate(tree.values)]
    keys = world.proof_keys()
    checkpoint_key = check_checkpoint_key(world, keys)
    for tree, index, answer in answers:  # first, middle and last of both trees
        m, value = tree.values[index]
        check_value_proof(answer, stream_id, m, value, index, tree, keys, checkpoint_key)
        name, key_id, _ = Note(answer["checkpoint"]["note"]).signatures[0]
        assert (name, key_id) == (checkpoint_key.name, checkpoint_key.key_id), \
            "the signature line names the verifier key and starts with its key ID"

    # What must fail: one bit of the value, a wrong leaf index, another root, another note.
    tree, index, answer = answers[TREE + 2]
    m, value = tree.values[index]
    path = [unb64(p) for p in answer["auditPath"]]
    root = unb64(answer["proof"]["rootHash"])
    for bit in (0, 63):
        changed = leaf_hash(value_leaf(stream_id, m, flipped(value, bit)))
        assert fold_inclusion(changed, index, TREE, path) != root, "a changed value verified"
    good = leaf_hash(value_leaf(stream_id, m, value))
    for wrong in (0, 1, 3, TREE):
        assert fold_inclusion(good, wrong, TREE, path) != root, f"leaf index {wrong} verified"
    assert fold_inclusion(leaf_hash(value_leaf(stream_id, m + 1, value)), index, TREE,
                          path) != root, "another timestamp verified"
    jwk = keys[answer["proof"]["keyId"]]
    assert not root_signature_verifies(proof_kind, jwk_public_key(jwk),
                                       unb64(answer["proof"]["signature"]), flipped(root)), \
        "the root's signature verified over another root"
    text = answer["checkpoint"]["note"]
    note = Note(text)
    for changed in (text.replace(f"\n{note.size}\n", f"\n{note.size + 1}\n", 1),
                    text.replace(b64(note.root), b64(flipped(note.root, 9)), 1),
                    text.replace(LOG_ORIGIN + "\n", LOG_ORIGIN + "x\n", 1)):
        assert changed != text
        assert not note_verifies(changed, checkpoint_key), f"a changed note verified: {changed!r}"


# --- The log of roots only grows ---

def test_checkpoints_are_consistent_and_hold_every_tree(world):
    first_stream = world.create_stream("SHA256_ECDSAP256_RFC3279")["id"]
    world.write_doubles(first_stream, values_across_the_epoch(2 * TREE, 1.0))
    older = world.latest_checkpoint(len(world.trees))
    second_stream = world.create_stream("SHA256_RSA2048_PKCS1")["id"]
    world.write_doubles(second_stream, [(10_000_000 + i, 0, -i / 3) for i in range(3 * TREE)])
    newer = world.latest_checkpoint(len(world.trees))
    assert older.size < newer.size == len(world.trees), \
        f"log sizes {older.size} then {newer.size} for {len(world.trees)} trees written"

    key = check_checkpoint_key(world, world.proof_keys())
    for size, text in sorted(world.notes.items()):
        assert note_verifies(text, key), f"the checkpoint of size {size} does not verify"

    proof = world.consistency(older.size, newer.size)
    assert verify_consistency(older.size, newer.size, older.root, newer.root, proof), \
        f"consistency {older.size} -> {newer.size} does not verify"
    assert not verify_consistency(older.size, newer.size, newer.root, older.root, proof)
    for i in range(len(proof)):
        altered = proof[:i] + [flipped(proof[i])] + proof[i + 1:]
        assert not verify_consistency(older.size, newer.size, older.root, newer.root, altered)
    assert world.consistency(newer.size, newer.size) == []

    # Every checkpoint seen in this file, pairwise (README: keep the checkpoints you see).
    notes = [Note(text) for _, text in sorted(world.notes.items())]
    for i, a in enumerate(notes):
        for b in notes[i + 1:]:
            assert verify_consistency(a.size, b.size, a.root, b.root,
                                      world.consistency(a.size, b.size)), \
                f"consistency {a.size} -> {b.size} does not verify"

    # The log's leaves, each recomputed from the values written; its index from a proof.
    by_index = {}
    for tree in world.trees:
        answer = world.proof(tree.stream_id, tree.values[-1][0])
        by_index[answer["checkpoint"]["logIndex"]] = tree.log_leaf()
    assert sorted(by_index) == list(range(newer.size)), \
        f"log indices {sorted(by_index)} for a log of {newer.size}"
    leaves = [leaf_hash(by_index[i]) for i in range(newer.size)]
    for note in notes:
        if note.size <= newer.size:
            assert mth(leaves[:note.size]) == note.root, \
                f"the checkpoint of size {note.size} is not the MTH of the trees written"


# --- The Tributech surface agrees ---

def test_tributech_proofhistory_and_validate_agree_with_the_proof(world):
    stream = world.create_stream(None)
    assert stream["proofKind"] == "SHA256_RSA2048_PSS", "the default proof kind"
    stream_id = stream["id"]
    world.write_doubles(stream_id, [(1_800_000_000_000_000 + i * 1_000, 0, 21.5 + i)
                                    for i in range(TREE)])
    tree = world.trees[-1]
    for m, _ in tree.values:
        proof = world.proof(stream_id, m)["proof"]
        reply = world.api("GET", "/demeter/api/proofhistory",
                          params={"StreamId": stream_id, "Timestamp": rfc3339(m)})
        assert reply.status_code == 200, reply.text
        history = reply.json()
        assert history["rootHash"] == proof["rootHash"], history
        assert history["signature"] == proof["signature"], history
        assert history["streamId"] == stream_id and history["merkleTreeDepth"] == DEPTH
        assert history["transactionId"] == ""
        assert micros_of(history["lastTimestamp"]) == tree.values[-1][0], history
        assert unb64(history["rootHash"]) == tree.root()

        reply = world.api("POST", "/demeter/api/validate",
                          {"streamId": stream_id, "timestamp": rfc3339(m, 60)})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"validProofExists": True,
                                "resultMessage": "Proof successfully validated",
                                "resultCode": "Success"}, reply.text

    reply = world.api("GET", "/demeter/api/proofhistory",
                      params={"StreamId": stream_id, "Timestamp": rfc3339(tree.values[0][0])})
    assert len(reply.json()["validationHistory"]) == TREE, \
        "each validation is kept in the proof's history"
