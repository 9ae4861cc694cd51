from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor.models import FloorRow


class RowIn(serializers.Serializer):
    group = serializers.UUIDField()
    name = serializers.CharField(max_length=200)
    idx = serializers.IntegerField(min_value=0)
    status = serializers.CharField(max_length=20)
    payload = serializers.JSONField(required=False, allow_null=True)


class RowOut(serializers.Serializer):
    id = serializers.UUIDField()
    group = serializers.UUIDField()
    name = serializers.CharField()
    idx = serializers.IntegerField()
    status = serializers.CharField()
    payload = serializers.JSONField()
    created_at = serializers.DateTimeField()


class BatchItemIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    status = serializers.CharField(max_length=20, allow_null=True)


class BatchIn(serializers.Serializer):
    group = serializers.UUIDField()
    rows = BatchItemIn(many=True)


class Rows(APIView):
    def post(self, request):
        data = RowIn(data=request.data)
        data.is_valid(raise_exception=True)
        row = FloorRow.objects.create(**data.validated_data)
        return Response(RowOut(row).data, status=201)

    def get(self, request):
        rows = FloorRow.objects.filter(group=request.query_params["group"]).order_by("-created_at")[
            :100
        ]
        return Response(RowOut(rows, many=True).data)


class RowsBatch(APIView):
    """The floor of a batch write (task-status): validate N items, one multi-row INSERT."""

    def post(self, request):
        data = BatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        group = data.validated_data["group"]
        rows = FloorRow.objects.bulk_create(
            FloorRow(group=group, name=item["name"], idx=i, status=item["status"] or "")
            for i, item in enumerate(data.validated_data["rows"])
        )
        return Response(RowOut(rows, many=True).data)
