import uuid

from django.db import models


class FloorRow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    group = models.UUIDField(db_index=True)
    name = models.CharField(max_length=200)
    idx = models.IntegerField()
    status = models.CharField(max_length=20)
    payload = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "floor"
        db_table = "bench_floor_row"
