"""django-import-export's side of the spreadsheet benchmark (bench/io_bench.py runs these phases in the peer's own
virtual environment, bench/.venvs/django): the same file into an equivalent model, and its export back to .xlsx."""

from __future__ import annotations

import argparse
import os
from typing import Any


def _django(url: str) -> tuple[Any, Any, Any]:
    """Django configured on `url` (a SQLite path or postgresql://user@host:port/name); (Office, Company, resource class) as
    django-import-export users write them, with its fastest documented import settings (bulk create, no diff, no
    instance lookup) and the link read with its row (select_related) on export."""
    import django
    from django.conf import settings

    from bench.io_bench import FIELDS, HEADERS

    if url.startswith("postgresql://"):
        user_host, name = url.removeprefix("postgresql://").rsplit("/", 1)
        user, host_port = user_host.split("@")
        host, port = host_port.split(":")
        db = {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": user, "HOST": host, "PORT": port}
    else:
        db = {"ENGINE": "django.db.backends.sqlite3", "NAME": url}
    settings.configure(DATABASES={"default": db}, INSTALLED_APPS=["django.contrib.contenttypes", "import_export"], USE_TZ=False)
    django.setup()
    from django.db import models
    from import_export import fields, resources, widgets

    class Office(models.Model):
        name = models.CharField(max_length=140, unique=True)

        class Meta:
            app_label = "contenttypes"

    class Company(models.Model):
        name = models.CharField(max_length=140, unique=True)
        industry = models.CharField(max_length=40, null=True)
        region = models.CharField(max_length=40, null=True)
        rating = models.CharField(max_length=40, null=True, default="warm")
        revenue = models.DecimalField(max_digits=18, decimal_places=2, null=True)
        employees = models.IntegerField(null=True)
        founded = models.DateField(null=True)
        city = models.CharField(max_length=60, null=True)
        email = models.EmailField(null=True)
        phone = models.CharField(max_length=40, null=True)
        active = models.BooleanField(default=True)
        office = models.ForeignKey(Office, null=True, on_delete=models.SET_NULL)

        class Meta:
            app_label = "contenttypes"

    plain = {f: fields.Field(attribute=f, column_name=h) for f, h in zip(FIELDS[:-1], HEADERS[:-1], strict=True)}
    plain["revenue"] = fields.Field(attribute="revenue", column_name="Revenue", widget=widgets.DecimalWidget())
    plain["employees"] = fields.Field(attribute="employees", column_name="Employees", widget=widgets.IntegerWidget())
    plain["founded"] = fields.Field(attribute="founded", column_name="Founded", widget=widgets.DateWidget())
    plain["active"] = fields.Field(attribute="active", column_name="Active", widget=widgets.BooleanWidget())
    plain["office"] = fields.Field(attribute="office", column_name="Office", widget=widgets.ForeignKeyWidget(Office, field="name"))
    meta = type("Meta", (), {"model": Company, "fields": tuple(FIELDS), "import_id_fields": ("name",), "use_bulk": True,
                             "batch_size": 1000, "skip_diff": True, "force_init_instance": True})
    queryset = {"get_queryset": lambda self: Company.objects.select_related("office").order_by("name")}
    resource_class = type("CompanyResource", (resources.ModelResource,), {**plain, **queryset, "Meta": meta})
    return Office, Company, resource_class


def _django_versions() -> dict[str, str]:
    from importlib import metadata

    return {p: metadata.version(p) for p in ("django", "django-import-export", "tablib", "openpyxl")}


def phase_django_import(args: argparse.Namespace) -> dict[str, Any]:
    """django-import-export (in its own environment): the same file into an equivalent model, links by name."""
    from bench.io_bench import OFFICES, clock, office_name, since

    office, company, resource_class = _django(args.url)
    import tablib
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.create_model(office)
        editor.create_model(company)
    office.objects.bulk_create([office(name=office_name(i)) for i in range(OFFICES)])
    start = clock()
    with open(args.file, "rb") as f:
        dataset = tablib.Dataset().load(f.read(), format="xlsx")
    result = resource_class().import_data(dataset, dry_run=False, use_transactions=True, raise_errors=True)
    seconds, cpu = since(start)
    return {"seconds": seconds, "cpu": cpu, "rows": company.objects.count(), "errors": result.has_errors(), "versions": _django_versions()}


def phase_django_export(args: argparse.Namespace) -> dict[str, Any]:
    """django-import-export's export of the imported rows to .xlsx (resource → tablib dataset → xlsx bytes → file)."""
    from bench.io_bench import clock, since

    resource_class = _django(args.url)[2]
    out = os.path.join(args.tmp, "django-export.xlsx")
    start = clock()
    dataset = resource_class().export()
    with open(out, "wb") as f:
        f.write(dataset.export("xlsx"))
    seconds, cpu = since(start)
    os.unlink(out)
    return {"seconds": seconds, "cpu": cpu, "rows": len(dataset)}
