"""mcpd settings: one file for every environment, read from the environment (and an optional .env)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; the real environment wins

# The data dir holds the sessions and the keys: whatever this process creates is its user's alone.
os.umask(0o077)


def _generated(path: Path, make: Callable[[], str]) -> str:
    """A dev value generated once into the data dir with 0600 permissions, then reused."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _tighten(path: Path, mode: int) -> None:
    """Take away the modes beyond ``mode`` from a path of ours (an older install's); others' are left alone."""
    status = path.stat()
    if status.st_uid == os.getuid() and stat.S_IMODE(status.st_mode) & ~mode:
        path.chmod(mode)


def _private_dir(path: Path) -> None:
    """The data dir, 0700 whether new or older."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)


def _private_sqlite(name: str) -> None:
    """The SQLite file 0600, created before SQLite does: it gives its -wal and -shm files the same mode."""
    database = Path(name)
    if name == ":memory:" or name.startswith("file:") or not database.parent.is_dir():
        return  # nothing on disk, or nowhere to put it yet: SQLite reports that itself
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal"))):
        if path.exists():
            _tighten(path, 0o600)


# An empty MCPD_DATA_DIR is the default too, never the current directory.
DATA_DIR = Path(env.str("MCPD_DATA_DIR", default="") or BASE_DIR / "var").resolve()
_private_dir(DATA_DIR)
(DATA_DIR / "static").mkdir(exist_ok=True)

SECRET_KEY = env.str("MCPD_SECRET_KEY", default="") or _generated(
    DATA_DIR / "secret_key", lambda: secrets.token_urlsafe(50)
)
ENCRYPTION_KEYS: list[str] = env.list("MCPD_ENCRYPTION_KEYS", default=[]) or [
    _generated(DATA_DIR / "encryption_key", lambda: Fernet.generate_key().decode())
]
for _key in ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError as exc:
        raise ImproperlyConfigured("MCPD_ENCRYPTION_KEYS holds a key that is not a valid Fernet key") from exc

DEBUG = env.bool("MCPD_DEBUG", default=False)
ALLOWED_HOSTS = env.list("MCPD_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("MCPD_CSRF_TRUSTED_ORIGINS", default=[])

MAX_BODY_BYTES = env.int("MCPD_MAX_BODY_BYTES", default=20 * 1024 * 1024)
# How long a process remembers tokens, grants and Llms (mcpd/memo.py): the bound on how late a
# revocation or a catalogue change takes effect on other workers and hosts. 0: ask the database each call.
AUTH_CACHE_SECONDS = env.float("MCPD_AUTH_CACHE_SECONDS", default=5.0)
# An SSE comment goes out after this many seconds without a provider event, so that proxies and load
# balancers do not cut a long silence (a model thinking) and a client's disconnect is noticed.
STREAM_KEEPALIVE_SECONDS = env.float("MCPD_STREAM_KEEPALIVE_SECONDS", default=15.0)
UPSTREAM_CONNECT_TIMEOUT = env.float("MCPD_UPSTREAM_CONNECT_TIMEOUT", default=10.0)
UPSTREAM_READ_TIMEOUT = env.float("MCPD_UPSTREAM_READ_TIMEOUT", default=600.0)
# Connections kept open to each provider host for the next call (llms/transport.py): as many as a worker
# holds calls, so that a burst of streams does not open (and TLS-handshake) new ones each time.
UPSTREAM_POOL_SIZE = env.int("MCPD_UPSTREAM_POOL_SIZE", default=env.int("MCPD_WORKER_CONNECTIONS", default=2000))
# Retries (llms/proxy.py, llms/routing.py): only before the first byte, each to another deployment, all
# within this many seconds; a failed deployment is skipped everywhere for MCPD_COOLDOWN_SECONDS.
RETRY_BUDGET_SECONDS = env.float("MCPD_RETRY_BUDGET_SECONDS", default=5.0)
COOLDOWN_SECONDS = env.float("MCPD_COOLDOWN_SECONDS", default=30.0)
# The largest reply mcpd reads from a provider (a non-streamed answer, or one event of a stream): a larger
# one is a 502, refused before it is held in memory.
UPSTREAM_MAX_BODY_BYTES = env.int("MCPD_UPSTREAM_MAX_BODY_BYTES", default=50 * 1024 * 1024)
# Limits (limits/): their counters live in the database, or in Redis when REDIS_URL is set. When the
# counters cannot be reached, calls under a limit are refused (503) unless MCPD_LIMITS_FAIL_OPEN.
REDIS_URL = env.str("REDIS_URL", default="")
LIMITS_FAIL_OPEN = env.bool("MCPD_LIMITS_FAIL_OPEN", default=False)
# How long a call holds a concurrency slot at most: a slot of a process that died lapses after this.
LIMITS_LEASE_SECONDS = env.int("MCPD_LIMITS_LEASE_SECONDS", default=3600)
# The one currency of every price and cost (a label: mcpd converts nothing).
CURRENCY = env.str("MCPD_CURRENCY", default="USD")
VAULT_ADDR = env.str("VAULT_ADDR", default="")
VAULT_TOKEN = env.str("VAULT_TOKEN", default="")
if min(MAX_BODY_BYTES, UPSTREAM_MAX_BODY_BYTES, UPSTREAM_CONNECT_TIMEOUT, UPSTREAM_READ_TIMEOUT,
       UPSTREAM_POOL_SIZE) <= 0:
    raise ImproperlyConfigured("MCPD_MAX_BODY_BYTES, MCPD_UPSTREAM_MAX_BODY_BYTES, MCPD_UPSTREAM_POOL_SIZE and the "
                               "upstream timeouts must be positive")
# Django refuses bodies over this before our view sees them; the view answers 413 itself for API routes.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

# Throttles (mcpd/throttle.py): failures counted per fixed window in the database, so every worker and
# host sees the same counts. A limit of 0 disables it; the window is the longest a lock lasts.
LOGIN_MAX_FAILURES_PER_USER = env.int("MCPD_LOGIN_MAX_FAILURES_PER_USER", default=5)
LOGIN_MAX_FAILURES_PER_ADDRESS = env.int("MCPD_LOGIN_MAX_FAILURES_PER_ADDRESS", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("MCPD_LOGIN_LOCKOUT_SECONDS", default=15 * 60)
API_MAX_AUTH_FAILURES_PER_ADDRESS = env.int("MCPD_API_MAX_AUTH_FAILURES_PER_ADDRESS", default=30)
API_AUTH_LOCKOUT_SECONDS = env.int("MCPD_API_AUTH_LOCKOUT_SECONDS", default=60)
if min(LOGIN_MAX_FAILURES_PER_USER, LOGIN_MAX_FAILURES_PER_ADDRESS, API_MAX_AUTH_FAILURES_PER_ADDRESS) < 0:
    raise ImproperlyConfigured("MCPD_LOGIN_MAX_FAILURES_PER_USER, MCPD_LOGIN_MAX_FAILURES_PER_ADDRESS and "
                               "MCPD_API_MAX_AUTH_FAILURES_PER_ADDRESS must be 0 (off) or positive")
if LOGIN_LOCKOUT_SECONDS <= 0 or API_AUTH_LOCKOUT_SECONDS <= 0:
    raise ImproperlyConfigured("MCPD_LOGIN_LOCKOUT_SECONDS and MCPD_API_AUTH_LOCKOUT_SECONDS must be positive")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "mcpd",
    "secrets_app",
    "llms",
    "audit",
    "limits",
]

MIDDLEWARE = [
    "mcpd.middleware.RequestIdMiddleware",
    "mcpd.middleware.ContentSecurityPolicyMiddleware",  # outside the rest: their error pages get it too
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mcpd.urls"
WSGI_APPLICATION = "mcpd.wsgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'mcpd.sqlite3'}")}
# Under gevent every request is a greenlet with a connection of its own: one kept past the request would
# outlive its greenlet. So connections close when the request ends; PostgreSQL's come from a pool
# (MCPD_DB_POOL_SIZE per worker process, keep workers x hosts x size below max_connections). The hot
# path needs none in the steady state (the caches of llms/callers.py; audit rows go to audit.writer).
DB_POOL_SIZE = env.int("MCPD_DB_POOL_SIZE", default=10)
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": DB_POOL_SIZE, "timeout": env.float("MCPD_DB_POOL_TIMEOUT", default=30.0),
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let several gunicorn workers share the embedded database.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    _private_sqlite(str(DATABASES["default"]["NAME"]))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
GUARDIAN_RAISE_403 = True
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: anonymous callers never run anything

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
FILE_UPLOAD_PERMISSIONS = 0o600  # collectstatic's files too (Django's default is 0644); whitenoise serves them
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mcpd.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "mcpd.drf.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mcpd API",
    "DESCRIPTION": "A self-hosted LLM gateway: OpenAI-compatible inference with per-Llm permissions and audit.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's scripts and styles from the installed package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Security: safe defaults that hold behind a TLS-terminating proxy; HSTS is opt-in.
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("MCPD_SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("MCPD_SECURE_COOKIES", default=False)
SECURE_HSTS_SECONDS = env.int("MCPD_HSTS_SECONDS", default=0)
BEHIND_PROXY = env.bool("MCPD_BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies in front append to X-Forwarded-For: the client's address is the hop the outermost
# of them added (mcpd.middleware.client_ip). 0 when not behind a proxy: the header is ignored.
TRUSTED_PROXY_HOPS = env.int("MCPD_TRUSTED_PROXIES", default=1) if BEHIND_PROXY else 0
if TRUSTED_PROXY_HOPS < 0:
    raise ImproperlyConfigured("MCPD_TRUSTED_PROXIES must be 0 or more")

# /metrics answers loopback, these networks, and bearer tokens of users with audit.view_metrics.
METRICS_ALLOW = env.list("MCPD_METRICS_ALLOW", default=[])
try:
    [ipaddress.ip_network(network, strict=False) for network in METRICS_ALLOW]
except ValueError as exc:
    raise ImproperlyConfigured(f"MCPD_METRICS_ALLOW: {exc}") from None

LOG_FORMAT = env.str("MCPD_LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("MCPD_LOG_FORMAT is plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "mcpd.logs.JsonFormatter"}},
    # MCPD_LOG_FORMAT=json: one JSON object per line (mcpd/logs.py), for a log shipper.
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("MCPD_LOG_LEVEL", default="INFO")},
    # mcpd.calls: one line per inference call; MCPD_CALL_LOG=false leaves them out.
    "loggers": {"django.request": {"level": "ERROR"},
                "mcpd.calls": {"level": "INFO" if env.bool("MCPD_CALL_LOG", default=True) else "WARNING"}},
}
