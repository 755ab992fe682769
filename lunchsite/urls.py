from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from . import pwa

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    # The room page's JS strings (djangojs catalogue) in the request's language.
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # The installable page (lunchsite/pwa.py): the worker must sit at the root to control the site.
    path("manifest.webmanifest", pwa.manifest, name="manifest"),
    path("sw.js", pwa.service_worker, name="service_worker"),
    path("offline/", pwa.offline, name="offline"),
    path("", include("rooms.urls")),
    path("", include("groups.urls")),
]
