"""The floor: the least a Django + DRF app can do for the benchmarked operations.

Same stack, same database, same serving as flowplatform, none of its features. Its figures
are the baseline the benchmarks divide by.
"""

import environ

env = environ.Env()
SECRET_KEY = "bench-floor"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "bench.floor",
]
MIDDLEWARE: list = []
ROOT_URLCONF = "bench.floor.urls"
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/test")}
# Served like flowplatform: a persistent connection per (sync) worker, or under ASGI, where
# each request runs on a thread of its own, a psycopg pool (DATABASE_POOL=true).
if env.bool("DATABASE_POOL", default=False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "pool": {"min_size": 1, "max_size": env.int("DATABASE_POOL_SIZE", 10)}
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = 60
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
