"""Django admin with django-import-export on the bench models: 8 list columns, filters, sort, search, 25 rows."""

from __future__ import annotations

from django.contrib import admin
from import_export.admin import ImportExportModelAdmin
from import_export.resources import ModelResource

from .models import Contact, Customer, Opportunity


class CustomerResource(ModelResource):
    class Meta:
        model = Customer
        fields = ("id", "name", "industry", "region", "rating", "amount", "employees", "founded", "city", "email", "phone", "active", "notes")


@admin.register(Customer)
class CustomerAdmin(ImportExportModelAdmin):
    resource_classes = (CustomerResource,)
    list_display = ("name", "industry", "region", "rating", "amount", "employees", "founded", "city")
    list_filter = ("industry", "region", "rating")
    search_fields = ("name",)
    ordering = ("-amount", "-id")
    sortable_by = ("name", "amount", "employees", "founded")
    fields = ("name", "industry", "region", "rating", "amount", "employees", "founded", "city", "email", "phone")
    list_per_page = 25
    show_full_result_count = False  # the documented setting for large tables


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("full_name", "customer", "title", "email", "phone", "birthday")
    raw_id_fields = ("customer",)
    list_per_page = 25
    show_full_result_count = False


@admin.register(Opportunity)
class OpportunityAdmin(admin.ModelAdmin):
    list_display = ("title", "customer", "stage", "amount", "probability", "close_date", "source")
    list_select_related = ("customer",)
    raw_id_fields = ("customer", "contact")
    list_filter = ("stage",)
    list_per_page = 25
    show_full_result_count = False
