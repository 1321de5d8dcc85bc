"""Settings of the docsai fixture project: a stand-in for docsai's old Django site, kept
only to make a real Django SQLite database for `bucketbase migrate sqlite` tests.

The database file is DOCSAI_DB (default: db.sqlite3 beside manage.py), so a test can make
one in a temporary folder.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "fixture-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = []
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "docsai",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DOCSAI_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "docsai_fixture.urls"
