// The room's WebSocket: connecting, reconnecting with backoff, and sending.
//
// Every command goes out with a `ref`; an `error` that answers it carries the same ref,
// and this module turns it back into the control that sent the command (its "origin"),
// so the error shows next to that control.

const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 8000;
const CONNECT_TIMEOUT_MS = 10000;
// Close codes after which trying again cannot help (full, not found, expired, kicked).
const FINAL_CLOSE_CODES = new Set([4403, 4404, 4410]);
// "Service restart": the server is being deployed (lunchsite/drain.py) and another process
// takes us at once. Reconnect within about this long, without the backoff; whatever we sent
// before the close arrived is applied there, so nothing is resent.
const RESTART_CLOSE_CODE = 1012;
const RESTART_RECONNECT_MS = 300;
const REFS_KEPT = 50;

/**
 * Open the room's socket. `url()` gives the address for each try (name and token change);
 * `onMessage(message)` gets every event (errors with their `origin`); `onStatus(event)`
 * gets {type: "socket:connecting" | "socket:open" | "socket:closed", code, retrySeconds}.
 */
export function openSocket({ url, onMessage, onStatus }) {
  let socket = null;
  let attempts = 0;
  let timer = null;
  let stopped = false;
  let nextRef = 1;
  let lastOrigin = "add";
  const origins = new Map(); // ref -> origin, for the last REFS_KEPT commands

  function connect() {
    clearTimeout(timer);
    timer = null;
    if (stopped) return;
    onStatus({ type: "socket:connecting" });
    const ws = new WebSocket(url());
    socket = ws;
    // A handshake that hangs (a dead Wi-Fi) is given up on, which schedules the next try.
    const openTimer = setTimeout(() => ws.close(), CONNECT_TIMEOUT_MS);
    ws.addEventListener("open", () => {
      clearTimeout(openTimer);
      if (ws !== socket) return;
      attempts = 0;
      onStatus({ type: "socket:open" });
    });
    ws.addEventListener("message", (event) => {
      if (ws !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (message && message.type === "error") {
        // The server echoes our ref; an older server does not, so fall back to the last sender.
        message.origin = origins.has(message.ref) ? origins.get(message.ref) : lastOrigin;
      }
      onMessage(message);
    });
    ws.addEventListener("close", (event) => {
      clearTimeout(openTimer);
      if (ws !== socket) return;
      socket = null;
      if (FINAL_CLOSE_CODES.has(event.code)) {
        onStatus({ type: "socket:closed", code: event.code, willRetry: false });
        return;
      }
      if (event.code === RESTART_CLOSE_CODE) attempts = 0;
      schedule(event.code);
    });
  }

  function schedule(code = 0) {
    if (stopped || timer) return;
    // Exponential backoff with jitter, so ten phones do not knock at the same instant; after
    // a restart the server already spread its closes, and the next process is waiting.
    const base = code === RESTART_CLOSE_CODE ? RESTART_RECONNECT_MS : Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempts);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    if (code !== RESTART_CLOSE_CODE) attempts += 1;
    onStatus({ type: "socket:closed", code: code, willRetry: true, retrySeconds: Math.max(1, Math.round(delay / 1000)) });
    timer = setTimeout(connect, delay);
  }

  return {
    connect,
    /** Try now (back online, back to the tab) instead of waiting for the backoff timer. */
    retryNow() {
      if (stopped || socket) return;
      attempts = 0;
      connect();
    },
    /** Drop a socket that may be dead (the network went away); the retry follows. */
    drop() {
      if (socket) socket.close();
    },
    /** Send `command` for the control `origin`; false when not connected. */
    send(command, origin) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      const ref = nextRef++;
      origins.set(ref, origin);
      if (origins.size > REFS_KEPT) origins.delete(origins.keys().next().value);
      lastOrigin = origin;
      socket.send(JSON.stringify({ ...command, ref }));
      return true;
    },
    /** Close for good: the room cannot be used any more. */
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close(1000);
      socket = null;
    },
  };
}
