"""A real CAS server, django-mama-cas (PyPI, unmodified), at OneAccess's CAS
paths (/api/v1/cas/login, /validate, /serviceValidate, /p3/serviceValidate,
/logout), for the gateway's interoperability tests (tests/interop_cas.rs).

    python server.py PORT      (CAS_DB: the SQLite file to use, made afresh)

Users alice and bob, passwords alice-password and bob-password. Every service on
localhost or 127.0.0.1 is allowed, gets the user model's fields as CAS 3.0
attributes, and receives single-logout requests.
"""

import os
import sys

import django
from django.conf import settings

PORT = sys.argv[1]

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY="oneaccess-gateway-interop-only",
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "mama_cas",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["CAS_DB"]}
    },
    MAMA_CAS_SERVICES=[
        {
            "SERVICE": r"^http://(localhost|127\.0\.0\.1):\d+/",
            "CALLBACKS": ["mama_cas.callbacks.user_model_attributes"],
            "LOGOUT_ALLOW": True,
        }
    ],
    MAMA_CAS_FOLLOW_LOGOUT_URL=True,
    USE_TZ=True,
    LOGGING={
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"mama_cas": {"handlers": ["console"], "level": "INFO"}},
    },
)
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.urls import include, path  # noqa: E402

urlpatterns = [path("api/v1/cas/", include("mama_cas.urls"))]

if os.path.exists(os.environ["CAS_DB"]):
    os.remove(os.environ["CAS_DB"])
call_command("migrate", verbosity=0)
User.objects.create_user(
    "alice", "alice@example.com", "alice-password", first_name="Alice", last_name="Zhang"
)
User.objects.create_user("bob", "bob@example.org", "bob-password", first_name="Bob", last_name="Li")
call_command("runserver", f"127.0.0.1:{PORT}", use_reloader=False, use_threading=True)
