"""Settings from the environment: timeouts, login limits, trusted proxies and request threads reach the app; a bad value stops the
start naming the variable; only a trusted proxy's forwarded scheme and address are believed."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine.auth import logins
from engine.auth.config import ConfigError, from_environ
from engine.web.auth_routes import LOGIN_CSRF

from .conftest import TEST_BUNDLE, add_test_user

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


def test_the_environment_sets_timeouts_limits_and_proxies() -> None:
    state = from_environ({"LOOM_SESSION_IDLE_MINUTES": "30", "LOOM_SESSION_MAX_HOURS": "12", "LOOM_LOGIN_MAX_FAILURES": "3",
                          "LOOM_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8", "LOOM_THREADS": "6"})
    assert state["session_idle"] == dt.timedelta(minutes=30) and state["session_absolute"] == dt.timedelta(hours=12)
    assert state["login_limits"].per_user == 3
    assert state["trusted_proxies"] == ["127.0.0.1", "10.0.0.0/8"]
    assert state["threads"] == 6
    assert from_environ({"PATH": "/bin", "LOOM_TRUSTED_PROXIES": " "}) == {}


@pytest.mark.parametrize(("name", "value"), [("LOOM_SESSION_IDLE_MINUTES", "ten"), ("LOOM_SESSION_MAX_HOURS", "0"),
                                             ("LOOM_LOGIN_MAX_FAILURES", "-2"), ("LOOM_THREADS", "0"),
                                             ("LOOM_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")])
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_environ({name: value})


def _login(app: Any, headers: dict[str, str]) -> Any:
    client = TestClient(app)
    form = client.get("/login", headers=headers)
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    # the login form's cookie may be Secure, which the client keeps off plain http: hand it back as the browser would
    cookie = next(v for k, v in form.headers.multi_items() if k == "set-cookie" and v.startswith(LOGIN_CSRF)).split(";")[0]
    client.cookies.clear()
    return client.post("/login", data={"username": "ann", "password": "pw", "csrf_token": token}, headers=headers | {"Cookie": cookie},
                       follow_redirects=False)


def _where_from(app: Any) -> str:
    with app.state.runtime.db.connect() as conn:
        return str(logins.history(conn, username="ann")[0]["ip"])


def test_a_worker_runs_at_most_its_threads_requests_at_once(make_app: Callable[..., Any]) -> None:
    running, most, lock = 0, 0, threading.Lock()

    def slow(_rt: Any, _access: Any) -> None:  # runs inside each request's thread
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.15)
        with lock:
            running -= 1

    app = make_app(threads=2, access_hook=slow)
    with TestClient(app) as client, ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: client.get("/login").status_code, range(6)))
    assert statuses == [200] * 6
    assert most == 2  # two at once, never more; the others waited their turn


def test_a_trusted_proxy_makes_the_session_cookie_secure_and_gives_the_callers_address(make_app: Callable[..., Any]) -> None:
    app = make_app(trusted_proxies=["*"])
    add_test_user(app.state.runtime, "ann", ("rep",))
    done = _login(app, FORWARDED)
    assert done.status_code == 303
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("loom_session="))
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()
    assert _where_from(app) == "203.0.113.9"


def test_without_trusted_proxies_forwarded_headers_are_ignored(make_app: Callable[..., Any]) -> None:
    app = make_app()
    add_test_user(app.state.runtime, "ann", ("rep",))
    done = _login(app, FORWARDED)
    assert done.status_code == 303
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("loom_session="))
    assert "secure" not in cookie.lower()
    assert _where_from(app) == "testclient"


def test_loom_serve_refuses_a_bad_setting_before_starting(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")} | {"LOOM_TRUSTED_PROXIES": "proxy.local"}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--metadata", str(TEST_BUNDLE), "--db",
                           f"sqlite:///{tmp_path / 'never.db'}", "--port", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "LOOM_TRUSTED_PROXIES" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "never.db").exists()  # refused before anything was written
