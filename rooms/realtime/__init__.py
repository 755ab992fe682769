"""The real-time plumbing under the room's WebSocket, apart from the room's rules.

- consumer.py: `LiveConsumer`, the base of rooms/consumers.py's RoomConsumer: layer outages,
  cleanup after daphne's cancels, dispatch without the database hop, bounded sends.
- transport.py: workarounds below the consumer (channels-redis's pub/sub channels, daphne's
  write buffer, autobahn's reference cycle), and the ASGI wrapper that reads the backlog.
- liveness.py: one task per process that heartbeats, resyncs and expires its connections.
- ratelimit.py: the per-participant action window.

Site-wide HTTP (middleware, health probes, origin and session-key checks, Redis outage
logging) is in the project package, lunchsite/.
"""
