// Registers the service worker (/sw.js), which shows an offline page when the network is gone.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {
    // Not available (a private window, an old browser): the site works the same without it.
  });
}
