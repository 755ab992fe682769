"""ASGI entry point: Django for HTTP, the rooms consumer for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lunchsite.settings")
# Set up Django (apps, settings) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from lunchsite import drain, metrics  # noqa: E402
from lunchsite.collector import tune_for_serving  # noqa: E402
from lunchsite.descriptors import descriptor_limit_raised  # noqa: E402
from lunchsite.security import allowed_hosts_or_terminal, with_session_key  # noqa: E402
from rooms.realtime import deadlines  # noqa: E402
from rooms.realtime.transport import with_send_backlog  # noqa: E402
from rooms.routing import websocket_urlpatterns  # noqa: E402

# with_drain outermost: it counts what is served and refuses WebSockets while draining; it and
# with_send_backlog both see daphne's own `send` (rooms/realtime/transport.py, lunchsite/drain.py).
application = drain.with_drain(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": with_send_backlog(
                allowed_hosts_or_terminal(with_session_key(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)

descriptor_limit_raised()
drain.install()  # under daphne: SIGTERM drains (lunchsite/drain.py)
metrics.serve()  # with METRICS_PORT: a port of its own (lunchsite/metrics.py)
deadlines.install()  # under daphne: decides due deadlines and runoffs (rooms/realtime/deadlines.py)
# Last, so that everything loading made is frozen (lunchsite/collector.py).
tune_for_serving(settings.GC_YOUNG_THRESHOLD)
