"""The app holding the unmanaged models of the bench tables."""

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "bench.peers.django_site.crm"
    label = "crm"
