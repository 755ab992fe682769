"""Open files for a process that serves thousands of WebSockets: each one is a descriptor."""

import logging
import resource

log = logging.getLogger(__name__)

# Where the hard limit is unlimited, ask for this many: far above a process's connections.
UNLIMITED_TARGET = 1 << 20


def descriptor_limit_raised() -> int:
    """Raise this process's soft limit on open files to its hard limit; return the soft limit.

    systemd, Docker and most shells start a process with a soft limit of 1024 and a hard
    limit far above it (often 524288). At 1024 a daphne process refuses its thousandth
    WebSocket (EMFILE) while the machine could hold ten times as many; the hard limit is the
    operator's real bound, so a serving process takes all of it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:  # a container may forbid it: serve with what we have
            log.warning("open files stay limited to %s: %s", soft, exc)
    return soft
