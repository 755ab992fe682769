// lunchsite's service worker (lunchsite/pwa.py serves it at /sw.js): an offline page, nothing else.
//
// It keeps the offline page and the static files that page uses, and answers only page
// navigations, only when the network fails. It never stores a room, the API's answers or any
// page that was loaded: a room's state is live, and a stale copy would show a list that is
// not the group's. WebSockets never pass through a service worker at all.
const CACHE = "lunchsite-offline-v1";
const OFFLINE_URL = "/offline/";
const KEPT = [OFFLINE_URL, "/static/rooms/site.css", "/static/rooms/icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(KEPT)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.mode === "navigate") {
    // The network, always; the offline page only when it cannot be reached.
    event.respondWith(fetch(request).catch(() => caches.match(OFFLINE_URL)));
    return;
  }
  const url = new URL(request.url);
  if (request.method === "GET" && url.origin === self.location.origin && KEPT.includes(url.pathname)) {
    // What the offline page itself loads: from the network when there is one.
    event.respondWith(fetch(request).catch(() => caches.match(request)));
  }
  // Anything else (the API, rooms, the language catalogue, other static files) is not touched.
});
