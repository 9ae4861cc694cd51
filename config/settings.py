"""flowplatform settings, read from the environment (12-factor).

The embedded default needs nothing: SQLite in WAL mode and an in-memory channel layer.
Production sets ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` (channels-redis).
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
_DEV_SECRET = "flowplatform-insecure-development-key-change-me"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET):
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "flowplatform",
    "executions",
    "outputs",
    "realtime",
    "config",
]

# Django's middleware, each run in the event loop under ASGI (flowplatform.middleware): an
# API request to an async view (a worker's report) never leaves the loop for them.
MIDDLEWARE = [
    "flowplatform.middleware.RequestIdMiddleware",
    "flowplatform.middleware.SecurityMiddleware",
    "flowplatform.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "flowplatform.middleware.CommonMiddleware",
    "flowplatform.middleware.XFrameOptionsMiddleware",
    "flowplatform.middleware.SessionMiddleware",
    "flowplatform.middleware.CsrfViewMiddleware",
    "flowplatform.middleware.AuthenticationMiddleware",
    "flowplatform.tenancy.TenancyMiddleware",  # a pass-through unless RLS is on
    "flowplatform.middleware.MessageMiddleware",
]
# Under ASGI: the threads per server process that decide batches of worker reports.
REPORT_THREADS = env.int("REPORT_THREADS", default=8)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
SQLITE_PATH = env.str("SQLITE_PATH", default=str(BASE_DIR / "var" / "flowplatform.sqlite3"))
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _db["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue on the busy
        # timeout instead of failing with "database is locked" on lock upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
            " PRAGMA foreign_keys=ON;"
        ),
    }
else:
    _db.setdefault("CONN_HEALTH_CHECKS", True)
    _db.setdefault("OPTIONS", {})
    _db["OPTIONS"].setdefault("connect_timeout", 5)
    # A psycopg pool per process by default: under ASGI every request runs its ORM calls on a
    # thread of its own, so persistent connections (CONN_MAX_AGE > 0) pile up one per thread
    # until PostgreSQL refuses clients. Gunicorn sync workers may prefer DATABASE_POOL=false
    # with CONN_MAX_AGE=60 (docs/deploy.md, "Database connections").
    if env.bool("DATABASE_POOL", default=True):
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"]["pool"] = {"min_size": 1, "max_size": env.int("DATABASE_POOL_SIZE", 10)}
    else:
        _db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- row-level security (PostgreSQL; DESIGN §3, flowplatform.tenancy) ----------------------
# DATABASE_URL is the application's role; MIGRATION_DATABASE_URL, when set, the role that
# owns the tables: `migrate` and `setupdbrole` use it (alias "owner"). RLS is enforced when
# DATABASE_RLS is on, by default whenever the two roles are configured.
MIGRATION_DATABASE_URL = env.str("MIGRATION_DATABASE_URL", default="")
_on_postgres = _db["ENGINE"] == "django.db.backends.postgresql"
FLOWPLATFORM_RLS = _on_postgres and env.bool("DATABASE_RLS", default=bool(MIGRATION_DATABASE_URL))


def _with_bypass(options: dict) -> dict:
    """Connections that start with the RLS bypass on (libpq ``options``)."""
    extra = "-c app.bypass_rls=on"
    options["options"] = f"{options['options']} {extra}" if options.get("options") else extra
    return options


if _on_postgres and MIGRATION_DATABASE_URL:
    _owner = env.db_url_config(MIGRATION_DATABASE_URL)
    if _owner["ENGINE"] != _db["ENGINE"]:
        raise ImproperlyConfigured("MIGRATION_DATABASE_URL must be a postgres:// URL.")
    _owner["CONN_MAX_AGE"] = 0
    _owner["OPTIONS"] = _with_bypass({**_owner.get("OPTIONS", {}), "connect_timeout": 5})
    if "TEST" in _db:
        _owner["TEST"] = dict(_db["TEST"])
    DATABASES["owner"] = _owner
if FLOWPLATFORM_RLS:
    # Every request runs in one transaction, scoped to the caller's organization by
    # authentication (set_config(..., true) lasts exactly as long as that transaction).
    _db["ATOMIC_REQUESTS"] = True
elif _on_postgres:
    # RLS off: the policies installed by the migrations must never hide rows.
    _with_bypass(_db["OPTIONS"])

# --- channel layer --------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/admin/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Served by WhiteNoise from the app directories (no collectstatic needed for the embedded run);
# production runs `collectstatic` and serves the hashed, compressed copies.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- HTTP hardening when DEBUG is off -------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=10 * 1024 * 1024)
# How deeply a client's JSON may nest (flowplatform.parsers); responses and events wrap a
# stored value in a few more levels, and the renderer writes at most 254.
MAX_JSON_DEPTH = min(env.int("MAX_JSON_DEPTH", default=100), 200)

# --- REST framework and OpenAPI -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "flowplatform.authentication.ApiKeyAuthentication",
        "flowplatform.authentication.OrganizationSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["flowplatform.permissions.IsOrganizationPrincipal"],
    "DEFAULT_RENDERER_CLASSES": ["flowplatform.renderers.FastJSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "flowplatform.renderers.JSONOnlyNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "flowplatform.parsers.JSONParser",  # DRF's, refusing NUL characters (422)
    ],
    "EXCEPTION_HANDLER": "flowplatform.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "flowplatform.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "flowplatform API",
    "DESCRIPTION": (
        "Workflow execution backend: flows, flow executions, task executions, task outputs."
        " Authenticate with `Authorization: Bearer <api key>` or `X-API-Key: <api key>`."
        " Request bodies are limited to `MAX_REQUEST_BODY_BYTES` (default 10 MiB; 413 above)."
        " Strings in bodies may not contain U+0000 or unpaired UTF-16 surrogates (422): the"
        " database cannot store them. JSON in bodies may nest at most `MAX_JSON_DEPTH` levels"
        " (default 100), its integers must fit in 64 bits (-2**63 to 2**64-1) and its numbers"
        " must be finite (422 otherwise)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api",
    # Several resources have a `status` field with different choices: name each set.
    "ENUM_NAME_OVERRIDES": {
        "FlowStatusEnum": "executions.enums.FlowStatus",
        "FlowExecutionStatusEnum": "executions.enums.FlowExecutionStatus",
        "TaskExecutionStatusEnum": "executions.enums.TaskExecutionStatus",
        "TaskOutputStatusEnum": "executions.enums.TaskOutputStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "flowplatform.openapi.add_error_responses",
    ],
}

# --- flowplatform ---------------------------------------------------------------------------
FLOWPLATFORM_LEASE_SECONDS = env.int("FLOWPLATFORM_LEASE_SECONDS", default=30)
# How long a server process trusts an API key it found live (flowplatform.keycache): a key
# revoked elsewhere stops working here within this many seconds. 0: look up every request.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5.0)
FLOWPLATFORM_DEFAULT_MAX_CONCURRENT_EXECUTIONS = env.int("MAX_CONCURRENT_EXECUTIONS", default=10)
FLOWPLATFORM_PYTHON_CALLABLES = env.list(
    "FLOWPLATFORM_PYTHON_CALLABLES",
    default=[
        "executions.worker.examples:add",
        "executions.worker.examples:fail",
        "executions.worker.examples:crash",
        "executions.worker.examples:sleep",
    ],
)
FLOWPLATFORM_EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=30)
FLOWPLATFORM_LIST_MAX_LIMIT = 1000
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])

# --- logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "flowplatform.logging.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "flowplatform.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}
