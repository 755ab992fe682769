"""A bare Channels app that speaks the room protocol without a database: the stack's own cost."""
