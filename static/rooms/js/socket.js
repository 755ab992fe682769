// The room's WebSocket: connecting, reconnecting with backoff, and sending.
//
// Every command goes out with a `ref`; an `error` that answers it carries the same ref,
// and this module turns it back into the control that sent the command (its "origin"),
// so the error shows next to that control.
//
// Every command also carries an `id` (docs/protocol.md, "Idempotency keys"), this page's own
// prefix and a counter, and is kept until the server answers it: an `ack` (applied) or an
// `error` naming the id. When the connection drops first (a deploy's 1012, a lost 1006),
// the commands still unanswered are sent again, the very same frames, once the next
// connection has joined (`welcome`): the server answers one it had applied with the same
// ack and does not apply it twice, so nothing is lost and nothing doubled.

const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 8000;
const CONNECT_TIMEOUT_MS = 10000;
// Close codes after which trying again cannot help (full, not found, expired, kicked).
const FINAL_CLOSE_CODES = new Set([4403, 4404, 4410]);
// "Service restart": the server is being deployed (lunchsite/drain.py) and another process
// takes us at once. Reconnect within about this long, without the backoff; what was not
// answered before the close is resent there (with its id: never applied twice).
const RESTART_CLOSE_CODE = 1012;
const RESTART_RECONNECT_MS = 300;
const REFS_KEPT = 50;
// Commands kept for a resend at most (the server's rate limit allows 20 in 10 s anyway).
const UNANSWERED_KEPT = 50;
// Refusals of a frame the server could not read as a command (or would not: the rate limit),
// which therefore carry no id: each answers the oldest frame of the connection still waiting.
const UNREAD_FRAME_CODES = new Set(["rate_limited", "message_too_large", "bad_message"]);

/** This page's prefix for command ids: random, so two tabs of one person never collide. */
function newIdPrefix() {
  const bytes = new Uint8Array(9);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("");
}

/**
 * Open the room's socket. `url()` gives the address for each try (name and token change);
 * `onMessage(message)` gets every event (errors with their `origin`); `onStatus(event)`
 * gets {type: "socket:connecting" | "socket:open" | "socket:closed", code, retrySeconds}.
 */
export function openSocket({ url, onMessage, onStatus, idPrefix = newIdPrefix() }) {
  let socket = null;
  let attempts = 0;
  let timer = null;
  let stopped = false;
  let nextRef = 1;
  let lastOrigin = "add";
  const origins = new Map(); // ref -> origin, for the last REFS_KEPT commands
  const unanswered = new Map(); // id -> the frame sent, until an ack or an error names it
  let inFlight = []; // ids sent on this connection since it joined, in order, not yet answered
  let joined = false; // the connection's `welcome` came: frames sent before it are not read

  function answered(id) {
    unanswered.delete(id);
    inFlight = inFlight.filter((sent) => sent !== id);
  }

  function transmit(ws, id) {
    inFlight.push(id);
    ws.send(unanswered.get(id));
  }

  function connect() {
    clearTimeout(timer);
    timer = null;
    if (stopped) return;
    onStatus({ type: "socket:connecting" });
    const ws = new WebSocket(url());
    socket = ws;
    joined = false;
    inFlight = [];
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
      if (message && (message.type === "ack" || message.type === "error")) {
        // Answered: applied, or refused for good (a refusal kept by the server too).
        if (message.id) answered(message.id);
        else if (message.type === "error" && UNREAD_FRAME_CODES.has(message.code) && inFlight.length) {
          answered(inFlight[0]);
        }
      }
      if (message && message.type === "error") {
        // The server echoes our ref; an older server does not, so fall back to the last sender.
        message.origin = origins.has(message.ref) ? origins.get(message.ref) : lastOrigin;
      }
      if (message && message.type === "welcome") {
        // Joined (frames before this are not read): what the last connection left
        // unanswered, and what was sent while this one joined, goes now, in order.
        joined = true;
        for (const id of unanswered.keys()) transmit(ws, id);
      }
      onMessage(message);
    });
    ws.addEventListener("close", (event) => {
      clearTimeout(openTimer);
      if (ws !== socket) return;
      socket = null;
      if (FINAL_CLOSE_CODES.has(event.code)) {
        unanswered.clear(); // the room cannot take them any more
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
      const id = `${idPrefix}-${ref}`;
      unanswered.set(id, JSON.stringify({ ...command, ref, id }));
      if (unanswered.size > UNANSWERED_KEPT) answered(unanswered.keys().next().value);
      if (joined) transmit(socket, id); // else it goes with the welcome
      return true;
    },
    /** How many commands sent have had no answer yet (they are resent after a reconnect). */
    unansweredCount() {
      return unanswered.size;
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
