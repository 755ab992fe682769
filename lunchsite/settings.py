"""Settings for lunchsite, read from the environment (see the README's configuration table).

Development defaults are safe: DEBUG is off unless DJANGO_DEBUG=1, and without DEBUG the
process refuses to start unless DJANGO_SECRET_KEY is set to a real value.
"""

import warnings
import zoneinfo
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-lunchsite-development-only"  # noqa: S105 - refused below
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET_KEY)
# 50 characters is what `check --deploy` (security.W009) asks for; accept nothing it warns about.
SECRET_KEY_MIN_LENGTH = 50
if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be set to a random string of at least {SECRET_KEY_MIN_LENGTH} "
        "characters when DJANGO_DEBUG is off (set DJANGO_DEBUG=1 for local development)."
    )

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    # Loopback is always safe to answer on: daphne behind a local TLS-terminating proxy.
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "daphne",  # first, so that `manage.py runserver` serves ASGI and WebSockets
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rooms",
    "groups",  # lunch groups: depends on rooms, never the other way (tests/test_architecture.py)
    "axes",  # the staff login's lockout (below)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /livez, /readyz, /healthz: before the host check and sessions (a probe uses the worker's
    # own address as its Host); lunchsite/health.py.
    "lunchsite.health.HealthProbeMiddleware",
    "lunchsite.middleware.ApiErrorMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "lunchsite.middleware.TimeZoneMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "lunchsite.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "lunchsite.urls"
ASGI_APPLICATION = "lunchsite.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "lunchsite.context_processors.csp_nonce",
            ],
        },
    },
]

# --- Database: SQLite in the project unless DATABASE_URL names another (PostgreSQL is tested).


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """An environment variable that must be one of `choices` (any case); refused otherwise."""
    value = env.str(name, default=default).upper()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _journal_mode = _env_choice(
        "SQLITE_JOURNAL_MODE", "WAL", ("WAL", "DELETE", "TRUNCATE", "PERSIST")
    )
    _synchronous = _env_choice("SQLITE_SYNCHRONOUS", "NORMAL", ("NORMAL", "FULL", "EXTRA"))
    # IMMEDIATE takes the write lock at BEGIN, so two processes never deadlock upgrading
    # a read lock; the timeout lets a writer wait for the other instead of failing at once.
    # The timeout is an env var so fault tests can make a locked database fail fast.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        # Short: a worker's database work shares one thread, and the consumer retries
        # three times before answering server_busy, so this bounds the stall at ~15 s.
        "timeout": env.float("SQLITE_BUSY_TIMEOUT_SECONDS", default=5),
        # The write-ahead log, synced at checkpoints rather than at every COMMIT: a change's
        # COMMIT no longer writes, syncs and deletes a journal file (on ext4 it took a sixth of
        # the CPU of one that does), and readers no longer wait for a writer. A commit
        # survives the process being killed; only a power cut may lose the last moments,
        # never the file's consistency. DELETE and FULL are SQLite's defaults, for a file
        # system without shared memory (a network share) or a deployment that wants every
        # commit on disk. docs/operations.md.
        "init_command": f"PRAGMA journal_mode={_journal_mode}; PRAGMA synchronous={_synchronous}",
    }
    # Kept open between calls: the consumers' database work runs on one thread, and with
    # Django's default (0) every call opened the file again and registered Django's SQL
    # functions anew, a quarter of a change's CPU (docs/performance.md).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
elif env.bool("DATABASE_POOL", default=True):
    # Under ASGI each HTTP request runs in a thread of its own and the consumers share one
    # database thread, so persistent per-thread connections are unbounded churn; psycopg's
    # pool (Django 5.1+) bounds a process to DATABASE_POOL_MAX_SIZE connections. The health
    # check makes the pool replace connections a PostgreSQL restart killed; our backend
    # makes it cost a round trip only when the connection looks dropped. docs/scaling.md.
    DATABASES["default"]["ENGINE"] = "lunchsite.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=8),
        # Waiting longer than this for a connection means PostgreSQL is down or saturated:
        # the consumer retries, then answers server_busy instead of hanging.
        "timeout": 2,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith(".postgresql"):
    # PostgreSQL plans each statement anew unless it is prepared; a room change's few
    # statements repeat thousands of times, so after DATABASE_PREPARE_THRESHOLD runs on a
    # connection psycopg prepares them (server-side binding is what makes that possible).
    # 0 turns it off, as PgBouncer in transaction mode without max_prepared_statements needs.
    _prepare_threshold = env.int("DATABASE_PREPARE_THRESHOLD", default=5)
    if _prepare_threshold:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=_prepare_threshold
        )
# PostgreSQL: threads that run the room services of one process (rooms/database.py); keep
# it below DATABASE_POOL_MAX_SIZE so HTTP requests and the health check find a connection.
# Two: psycopg gives up the GIL around every libpq call, so more threads mostly wait for
# it; full bench runs with two and with four gave the same ratios, and two holds fewer
# pool connections (docs/performance.md).
DATABASE_THREADS = env.int("DATABASE_THREADS", default=2)
# PostgreSQL: the everyday changes (add, remove, vote, veto, rename, in/out, extend) go from
# the event loop through psycopg's async connection, with as many connections of the loop's
# own as DATABASE_THREADS, instead of a database thread (rooms/everyday.py).
ROOM_CHANGES_ON_EVENT_LOOP = env.bool("ROOM_CHANGES_ON_EVENT_LOOP", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The serving process's young-generation GC threshold (Python's: 700), applied with gc.freeze
# by lunchsite/asgi.py; 0 keeps Python's settings (lunchsite/collector.py).
GC_YOUNG_THRESHOLD = env.int("GC_YOUNG_THRESHOLD", default=20_000)

# --- Channel layer and cache: in-process without REDIS_URL, shared Redis with it.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": env.str(
                "CHANNEL_LAYER_BACKEND", default="channels_redis.pubsub.RedisPubSubChannelLayer"
            ),
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# --- The staff login (/admin/): django-axes counts failed logins in the database (so it works
# with Redis down, on SQLite and PostgreSQL alike) per username *and* client address together.
# STAFF_LOGIN_FAILURES failures of one username from one address lock that pair out for
# STAFF_LOGIN_COOLOFF_SECONDS, counted from the lockout (more tries during it do not extend
# it). Nobody can lock a staff member out from another address, and from the same one (an
# office behind one NAT) only for the cool-off. The address is REMOTE_ADDR, which daphne's
# --proxy-headers sets from nginx's X-Forwarded-For. docs/operations.md, "Staff login".
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("STAFF_LOGIN_FAILURES", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.float("STAFF_LOGIN_COOLOFF_SECONDS", default=600))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "rooms/login_locked.html"
# Failures are kept (AccessAttempt, in the admin); successful logins are not logged as rows.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no "AXES: BEGIN" line at every start; lockouts are still logged

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Languages: Korean and English, picked from Accept-Language, switchable.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ko", _("Korean"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True
# Dates on pages are in the viewer's time zone once the browser has said it (a cookie), and in
# this one until then: most people who use lunchsite eat in Korea.
PAGE_TIME_ZONE = env.str("PAGE_TIME_ZONE", default="Asia/Seoul")
if PAGE_TIME_ZONE not in zoneinfo.available_timezones():
    raise ImproperlyConfigured(f"PAGE_TIME_ZONE {PAGE_TIME_ZONE!r} is not a time zone name")

# --- Static files: WhiteNoise serves them from daphne itself, DEBUG or not.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the finders so a fresh checkout works without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# STATIC_ROOT exists only after an optional collectstatic; its absence is fine here.
warnings.filterwarnings("ignore", message="No directory at: ")

# --- Security. HTTPS-only settings are opt-in so plain daphne on loopback works.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
# A load balancer probes workers over plain HTTP on their own port: a 301 would read as down.
SECURE_REDIRECT_EXEMPT = [r"^(livez|readyz|healthz)$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 60 * 60 * 24 * 30
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Behind a proxy the address people use is not the one daphne sees: links and QR codes use
# this (e.g. https://lunch.example), and its host is served and trusted for forms.
PUBLIC_URL = env.str("PUBLIC_URL", default="").rstrip("/")
if PUBLIC_URL:
    _public_host = urlsplit(PUBLIC_URL).hostname or ""
    if _public_host and _public_host not in ALLOWED_HOSTS:
        ALLOWED_HOSTS.append(_public_host)
    CSRF_TRUSTED_ORIGINS.append(PUBLIC_URL)

# --- Room rules (the public contract's limits; see docs/protocol.md).
ROOM_TTL_SECONDS = env.int("ROOM_TTL_SECONDS", default=600)
ROOM_MAX_PARTICIPANTS = env.int("ROOM_MAX_PARTICIPANTS", default=10)
ROOM_MAX_ITEMS = env.int("ROOM_MAX_ITEMS", default=30)
ROOM_CREATE_PER_MINUTE = env.int("ROOM_CREATE_PER_MINUTE", default=30)
# Counted per participant (all of its connections on one process together), not per socket.
ROOM_ACTIONS_PER_10S = env.int("ROOM_ACTIONS_PER_10S", default=20)
# Distinct participants a room admits over its whole life (rejoins by token or session do
# not count again): a client that throws away its identity cannot vote 20 times.
ROOM_MAX_PARTICIPANTS_EVER = env.int(
    "ROOM_MAX_PARTICIPANTS_EVER", default=3 * ROOM_MAX_PARTICIPANTS
)
# The host without an open connection this long loses the role to whoever joined first.
ROOM_HOST_GRACE_SECONDS = env.float("ROOM_HOST_GRACE_SECONDS", default=60)
# One participant (a browser session) may hold this many live connections to a room; the next
# is refused with too_many_connections and close code 4429.
ROOM_MAX_CONNECTIONS_PER_PARTICIPANT = env.int("ROOM_MAX_CONNECTIONS_PER_PARTICIPANT", default=5)
# A client that does not read: once daphne holds this many bytes it has not taken, the
# connection is sent nothing more until it drains, then only the newest state.
ROOM_SEND_BACKLOG_BYTES = env.int("ROOM_SEND_BACKLOG_BYTES", default=64 * 1024)
ROOM_ITEM_MAX_LENGTH = 60
ROOM_NAME_MAX_LENGTH = 24
ROOM_ORDER_MAX_LENGTH = 40
# The bill's split: shares are multiples of this (the payer's takes what is left), in this
# currency (an ISO 4217 code; KRW has no coins below 10 and people send round hundreds).
ROOM_BILL_UNIT = env.int("ROOM_BILL_UNIT", default=100)
ROOM_CURRENCY = env.str("ROOM_CURRENCY", default="KRW")
# A room posts its summary to its group's chat (`announce`) at most once this often.
ROOM_ANNOUNCE_INTERVAL_SECONDS = env.float("ROOM_ANNOUNCE_INTERVAL_SECONDS", default=60)
ROOM_MAX_FRAME_BYTES = 2048
# Each process refreshes the presence of all its connections this often (one UPDATE); a
# connection silent for PRESENCE_TIMEOUT (its worker died) stops counting toward the cap.
ROOM_HEARTBEAT_SECONDS = env.float("ROOM_HEARTBEAT_SECONDS", default=20)
ROOM_PRESENCE_TIMEOUT_SECONDS = env.float("ROOM_PRESENCE_TIMEOUT_SECONDS", default=60)
# Redis pub/sub delivers at most once (a Redis restart drops what was in flight), so each
# process reads its rooms' versions this often (one query) and resends a missed state after
# a 1 s grace; it also hangs up the connections of rooms that expired. 1 s keeps a lost
# change under ~2.5 s, well within the 5 s the issue allows (rooms/realtime/liveness.py).
ROOM_RESYNC_SECONDS = env.float("ROOM_RESYNC_SECONDS", default=1)
# Joins and leaves within this long send their room one state, not one each (0: each).
# Every joiner still gets its own state at once (rooms/broadcast.py).
ROOM_PRESENCE_COALESCE_SECONDS = env.float("ROOM_PRESENCE_COALESCE_SECONDS", default=0.1)
# How long a runoff between tied items runs (issue 29), and how often each process looks
# for deadlines and runoffs that are due (one probe of a partial index; 1 s decides within
# the 2 s the issue allows; 0: never, for a process that must not decide).
ROOM_RUNOFF_SECONDS = env.float("ROOM_RUNOFF_SECONDS", default=30)
ROOM_DEADLINE_POLL_SECONDS = env.float("ROOM_DEADLINE_POLL_SECONDS", default=1)

# --- Health (lunchsite/health.py). /readyz stays 200 while a channel layer that answered before has
# failed for less than this: a Redis restart hits every worker at once, and connected clients
# ride it out; a load balancer that pulled them all would make it an outage. 0: no grace.
READYZ_CHANNEL_LAYER_GRACE_SECONDS = env.float("READYZ_CHANNEL_LAYER_GRACE_SECONDS", default=30)

# --- Deploys and metrics (lunchsite/drain.py, lunchsite/metrics.py; docs/operations.md).
# On SIGTERM a process stops taking WebSockets and closes its own with 1012 ("service restart")
# in jittered batches over ROOM_DRAIN_SECONDS, so that their clients reconnect to the other
# processes a few at a time; then it waits up to ROOM_DRAIN_FINISH_SECONDS for the commands in
# flight and the leaves. The systemd unit's TimeoutStopSec must exceed the two together.
# 0: daphne's own SIGTERM (everything cancelled at once, clients see 1006).
ROOM_DRAIN_SECONDS = env.float("ROOM_DRAIN_SECONDS", default=5)
ROOM_DRAIN_FINISH_SECONDS = env.float("ROOM_DRAIN_FINISH_SECONDS", default=5)
# Prometheus metrics on a port of their own (one per process), never on the public one; 0: none.
METRICS_PORT = env.int("METRICS_PORT", default=0)
METRICS_ADDRESS = env.str("METRICS_ADDRESS", default="127.0.0.1")

# --- Lunch groups (issue 10; docs/protocol.md "Lunch groups").
# `pick` with avoid_recent skips what the group decided in its other rooms this many days.
GROUP_RECENT_DAYS = env.int("GROUP_RECENT_DAYS", default=7)
# The group page's history and favourites look back this far, and purge_rooms keeps a
# group's decided rooms this long (the history outlives the rooms' 10-minute life).
GROUP_HISTORY_DAYS = env.int("GROUP_HISTORY_DAYS", default=30)
# Webhooks never go to loopback, private, link-local, multicast or reserved addresses
# unless this is set (tests, or a chat server on the intranet).
GROUP_WEBHOOK_ALLOW_PRIVATE = env.bool("GROUP_WEBHOOK_ALLOW_PRIVATE", default=False)
GROUP_WEBHOOK_TIMEOUT_SECONDS = env.float("GROUP_WEBHOOK_TIMEOUT_SECONDS", default=5)
GROUP_WEBHOOK_ATTEMPTS = env.int("GROUP_WEBHOOK_ATTEMPTS", default=3)
# The wait before the second attempt; it doubles before each further one.
GROUP_WEBHOOK_BACKOFF_SECONDS = env.float("GROUP_WEBHOOK_BACKOFF_SECONDS", default=1)
# The scheduler (manage.py run_scheduler, groups/scheduler.py) looks this often for rooms to
# open; the links it posts start with PUBLIC_URL, else this (`make run` sets it to the office
# address it serves), else http://localhost:8000.
SCHEDULER_INTERVAL_SECONDS = env.float("SCHEDULER_INTERVAL_SECONDS", default=10)
GROUP_LINK_BASE_URL = env.str("GROUP_LINK_BASE_URL", default="").rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # channels-redis logs a traceback a second while Redis is away: one warning instead, then a
    # count, then one when it is back (lunchsite/outage.py).
    "filters": {"redis_outage": {"()": "lunchsite.outage.RedisOutageFilter"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "channels_redis.pubsub": {"filters": ["redis_outage"]},
    },
}
