"""Answers given before the body was read (413 for an oversized body, 404 for an unknown path)
reach clients that send the whole body before they read: Python's `urllib` over HTTP/1.1 and
curl over HTTP/2, both verifying the generated certificate."""

import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

BODY = b'{"value":' + b"1" * (8 * 1024 * 1024) + b"}"


@pytest.mark.parametrize("path,status", [
    ("/api/v1/boiler/starts", 413),
    ("/no/such/path", 404),
])
def test_urllib_sends_8_mib_and_gets_the_answer(portico, path, status):
    context = ssl.create_default_context(cafile=portico.cert)
    request = urllib.request.Request(portico.url + path, data=BODY, method="PUT",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context, timeout=30)
    assert refused.value.code == status
    problem = json.loads(refused.value.read())
    assert problem["status"] == status


def test_curl_over_http2_gets_the_413(portico, tmp_path):
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    done = subprocess.run(
        ["curl", "--http2", "--silent", "--show-error", "--cacert", portico.cert,
         "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", f"@{body}",
         "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
         portico.url + "/api/v1/boiler/starts"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2 413"
