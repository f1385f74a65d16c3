"""starlette-admin on the bench tables: list (8 columns, a filter, sort, search), detail, create; no auth provider."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette_admin.contrib.sqla import Admin, ModelView

from bench.peers.orm_models import Contact, Customer, Opportunity, engine

LIST = ["name", "industry", "region", "rating", "amount", "employees", "founded", "city"]
FORM = [*LIST, "email", "phone"]


class CustomerView(ModelView):
    fields = ("id", *FORM, "active", "notes", "owner", "created_at", "updated_at", "version",)
    exclude_fields_from_list = ("id", "email", "phone", "active", "notes", "owner", "created_at", "updated_at", "version",)
    exclude_fields_from_create = ("id", "active", "notes", "owner", "created_at", "updated_at", "version",)
    sortable_fields = ("name", "amount", "employees", "founded",)
    searchable_fields = ("name", "industry", "region", "rating",)  # starlette-admin filters only on searchable fields
    fields_default_sort = (("amount", True),)
    page_size = 25
    page_size_options = (25, 50, 100,)


def app() -> Starlette:
    """The ASGI app (a factory, one per worker)."""
    made = Starlette()
    admin = Admin(engine(), title="Bench")
    admin.add_view(CustomerView(Customer))
    admin.add_view(ModelView(Contact))
    admin.add_view(ModelView(Opportunity))
    admin.mount_to(made)
    return made
