"""
The smallest Django project that runs the tutorial's view: no database,
no installed apps, no middleware.  The tutorial keys each history by the
session key; the view reads the session cookie itself (request.COOKIES),
which is the same key without a session store to look it up in.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

ROOT_URLCONF = "urls"
WSGI_APPLICATION = "wsgi.application"

INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "OPTIONS": {
        # Django caches compiled templates when DEBUG is off; said here
        "loaders": [("django.template.loaders.cached.Loader",
                     ["django.template.loaders.filesystem.Loader"])],
    },
}]

USE_TZ = True
LOGGING_CONFIG = None

# as in the tutorial's settings.py
REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "18379"))
REDIS_DB = 0
