from django.urls import path

from bench.floor.views import Rows

urlpatterns = [path("rows", Rows.as_view())]
