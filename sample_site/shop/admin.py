from django.contrib import admin

from .models import Category, Note, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price", "category", "in_stock", "owner", "created"]
    list_filter = ["category", "in_stock"]
    search_fields = ["name", "category__name"]


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["text", "owner", "created"]
