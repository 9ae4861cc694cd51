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


class Rows(APIView):
    def post(self, request):
        data = RowIn(data=request.data)
        data.is_valid(raise_exception=True)
        row = FloorRow.objects.create(**data.validated_data)
        return Response(RowOut(row).data, status=201)

    def get(self, request):
        rows = FloorRow.objects.filter(group=request.query_params["group"]).order_by(
            "-created_at"
        )[:100]
        return Response(RowOut(rows, many=True).data)
