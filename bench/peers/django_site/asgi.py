"""ASGI entry for uvicorn: `uvicorn bench.peers.django_site.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.django_site.settings")
application = get_asgi_application()
