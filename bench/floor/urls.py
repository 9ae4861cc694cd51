from django.urls import path

from bench.floor.views import Rows, RowsBatch

urlpatterns = [path("rows", Rows.as_view()), path("rows/batch", RowsBatch.as_view())]
