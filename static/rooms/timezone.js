// The browser's time zone, for the dates the server writes into pages (a group's history):
// lunchsite/middleware.py TimeZoneMiddleware reads this cookie. Zone names need no escaping.
(function () {
  "use strict";
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone || document.cookie.split("; ").includes("tz=" + zone)) return;
  document.cookie = "tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
})();
