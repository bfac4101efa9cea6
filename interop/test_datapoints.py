"""Every datapoint type read and written over HTTPS with `requests`, verifying the generated
certificate (never verify=False)."""

import pytest
import requests

CASES = [
    ("/api/v1/boiler/running", True),
    ("/api/v1/boiler/running", False),
    ("/api/v1/boiler/mode", "Xentara"),
    ("/api/v1/boiler/starts", 1),
    ("/api/v1/boiler/temperature", 1.23),
]


@pytest.mark.parametrize("path,value", CASES)
def test_write_then_read_each_type(portico, path, value):
    written = requests.put(portico.url + path, json={"value": value}, verify=portico.cert, timeout=10)
    assert written.status_code == 200, written.text
    read = requests.get(portico.url + path, verify=portico.cert, timeout=10)
    assert read.status_code == 200
    body = read.json()
    assert body["value"] == value and type(body["value"]) is type(value)
    assert body["quality"] == "good"
    assert body["updateTime"].endswith("Z")


def test_post_writes_too(portico):
    written = requests.post(portico.url + "/api/v1/boiler/starts", json={"value": 42},
                            verify=portico.cert, timeout=10)
    assert written.status_code == 200
    assert requests.get(portico.url + "/api/v1/boiler/starts", verify=portico.cert,
                        timeout=10).json()["value"] == 42


def test_an_integer_literal_is_a_valid_float(portico):
    written = requests.put(portico.url + "/api/v1/boiler/temperature", json={"value": 20},
                           verify=portico.cert, timeout=10)
    assert written.status_code == 200
    assert written.json()["value"] == 20.0


def test_bad_input_is_a_problem_document(portico):
    reply = requests.put(portico.url + "/api/v1/boiler/starts", json={"value": "many"},
                         verify=portico.cert, timeout=10)
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "type_mismatch"


def test_read_only_refuses_writes_with_allow(portico):
    reply = requests.put(portico.url + "/api/v1/boiler/serial", json={"value": "X"},
                         verify=portico.cert, timeout=10)
    assert reply.status_code == 405
    assert reply.headers["allow"] == "GET, HEAD, OPTIONS"


def test_the_certificate_is_really_verified(portico):
    # The system trust store does not know the generated certificate: verification must fail.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(portico.url + "/healthz", timeout=10)
