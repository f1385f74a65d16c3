"""Prepare Django on the bench database: its own tables (auth, sessions, admin log), a superuser and a logged-in session.

Prints one JSON line: {"cookie": "...", "csrf": "..."} for the load generator.
"""

from __future__ import annotations

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.django_site.settings")


def main() -> None:
    """Migrate Django's own apps, make the user, open a session."""
    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.utils.crypto import get_random_string

    call_command("migrate", verbosity=0, interactive=False)
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "bench@example.com", "bench-password-1")
    session = SessionStore()
    session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: user.get_session_auth_hash()})
    session.create()
    csrf = get_random_string(32)
    print(json.dumps({"cookie": f"sessionid={session.session_key}; csrftoken={csrf}", "csrf": csrf}))


if __name__ == "__main__":
    main()
