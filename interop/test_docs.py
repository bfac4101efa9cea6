"""Swagger UI at /api/docs renders in headless Chromium with every non-loopback address
unreachable, so the page needs nothing from the internet."""

import shutil
import subprocess


def test_swagger_ui_renders_offline(portico, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is required (Debian package `chromium`; .ci/run installs it)"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path}",
         # Only loopback is reachable: every other host goes to a proxy that does not exist.
         "--proxy-server=http://127.0.0.1:9",
         # The generated certificate is verified by the requests tests; Chromium has no store for it.
         "--ignore-certificate-errors",
         "--virtual-time-budget=20000", "--dump-dom", portico.url + "/api/docs"],
        capture_output=True, text=True, timeout=120,
    )
    dom = result.stdout
    assert "swagger-ui" in dom, result.stderr[-2000:]
    assert 'class="title"' in dom and "Portico" in dom, "the document's title is rendered"
    assert "opblock" in dom, "operations are rendered"
    assert "/api/v1/boiler/temperature" in dom, "configured endpoints are listed"
