"""Starts a real `portico serve` (the binary in $PORTICO_BIN) on the example configuration."""

import os
import pathlib
import signal
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Portico:
    def __init__(self, process, url, cert):
        self.process = process
        self.url = url
        self.cert = cert


@pytest.fixture(scope="session")
def portico(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("portico-data")
    binary = os.environ.get("PORTICO_BIN", str(ROOT / "target" / "debug" / "portico"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTICO_")}
    env["PORTICO_LOG__LEVEL"] = "warn"
    process = subprocess.Popen(
        [binary, "serve", "--config", str(ROOT / "portico.example.toml"),
         "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    banner = process.stdout.readline()  # "Portico x.y.z listening on https://127.0.0.1:PORT"
    url = next((w for w in banner.split() if w.startswith("https://")), None)
    assert url, f"no URL in the banner: {banner!r}"
    yield Portico(process, url, str(data_dir / "tls" / "cert.pem"))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, "graceful shutdown on SIGTERM exits 0"
