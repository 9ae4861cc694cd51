"""Teach drf-spectacular about our authenticators (imported from AppConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "flowplatform.authentication.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_requirement(self, auto_schema):  # noqa: ANN001, ANN201
        # Either header alone authenticates: two alternative requirements. (One object naming
        # both would tell clients, and the fuzzer, that both are needed at once.)
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return [
            {"type": "http", "scheme": "bearer", "description": "An API key."},
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        ]


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "flowplatform.authentication.OrganizationSessionAuthentication"
    name = "SessionCookie"

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
