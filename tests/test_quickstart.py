"""The quick start as a person runs it: `loom serve --demo` in its own process on a fresh SQLite file and a free port,
then a demo user logs in and reads customers on a screen and through the API. Prints the time to the first page
(bench/ measures it; a test asserts no timing)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import CRM_BUNDLE, stop

UP_DEADLINE = 300.0  # seconds: a failure to start, not a speed test (bench/ measures the start)
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(proc: subprocess.Popen[str], base: str, deadline: float) -> None:
    """Poll the login page until it answers; fail with the server's output if the process ends first."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"loom serve exited with {proc.returncode}:\n{output[-3000:]}")
        try:
            if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("loom serve did not answer in time")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, float]]:
    """(process, base URL, start time) of `loom serve --demo` running as a subprocess; stopped afterwards."""
    port = _free_port()
    command = [sys.executable, "-m", "engine.cli", "serve", "--demo", "--metadata", str(CRM_BUNDLE),
               "--db", f"sqlite:///{tmp_path / 'quickstart.db'}", "--host", "127.0.0.1", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")} | {"LOOM_FILES": str(tmp_path / "files")}
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, f"http://127.0.0.1:{port}", started
    finally:
        stop(proc)


def _login(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    done = client.post("/login", data={"username": username, "password": "demo", "csrf_token": token.group(1)})
    assert done.status_code == 303 and client.cookies.get("loom_session"), done.text[:500]
    return client


def test_serve_demo_then_log_in_and_read_customers(served: tuple[subprocess.Popen[str], str, float]) -> None:
    proc, base, started = served
    _wait_until_up(proc, base, started + UP_DEADLINE)
    client = _login(base, "sales_rep")
    try:
        page = client.get("/m/customer")
        first_page = time.monotonic() - started
        print(f"\nloom serve --demo: first page after {first_page:.1f} s")
        assert page.status_code == 200 and "<h1>Customers</h1>" in page.text
        assert len(re.findall(r'class="row-link" href="/m/customer/\d+"', page.text)) == 25
        api = client.get("/api/customer", params={"limit": 5, "count": "true", "fields": "name,owner"})
        assert api.status_code == 200, api.text[:500]
        body = api.json()
        assert len(body["items"]) == 5 and body["total"] > 5 and body["next_cursor"]
        assert all(set(item) == {"id", "name", "owner"} and item["name"] for item in body["items"])
    finally:
        client.close()
    admin = _login(base, "admin")
    try:
        everyone = admin.get("/api/customer", params={"count": "true", "limit": 1}).json()["total"]
    finally:
        admin.close()
    assert everyone > body["total"]  # the sales rep sees only the customers in their scope
