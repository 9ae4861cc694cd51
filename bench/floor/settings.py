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
DATABASES["default"]["CONN_MAX_AGE"] = 60
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
