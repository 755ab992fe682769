"""Python's garbage collector, set for a process that serves rooms.

A daphne process runs every room it holds on one event loop, and a collection stops that loop
(and the database threads) until it is done. With Python's thresholds (700, 10, 10) a process
holding 1,000 connections walks their objects again and again; in an A/B at 60 actions/s the
setting here took the fan-out p99 from 1.5x the bare-Channels baseline's to 0.95x
(docs/performance.md, "The garbage collector").
"""

import gc

# Gen1 and gen2 are collected after this many collections of the generation below them
# (Python: 10 and 10). Gen1 soon: each WebSocket's handshake leaves a reference cycle in
# daphne (twisted's HTTPChannel and the request it upgraded), often with one end already in
# gen1, and at 20 young collections per gen1 walk three thousand reconnects grew the process
# by 1 KiB each without levelling off; at 2 it levels off within a few hundred (issue 27's
# churn). A gen1 walk covers only what survived a young collection since the last one, so it
# costs little. Gen2, which walks every connection's objects, stays as rare as before (every
# thousand young collections), and also waits until a quarter of the heap is new.
MIDDLE_THRESHOLD = 2
OLD_THRESHOLD = 500


def tune_for_serving(young_threshold: int) -> None:
    """Leave what loading made out of every collection, and collect young objects less often.

    The modules, classes and functions that loading made live as long as the process:
    `gc.freeze` moves them out of the collector's walks. A higher young threshold lets the
    objects of one frame (its queryset rows, its state dict) die of their reference counts
    before a collection promotes them toward the generations whose walks are long.
    `young_threshold` 0 keeps Python's own settings.
    """
    if young_threshold <= 0:
        return
    gc.collect()  # what loading left as garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(young_threshold, MIDDLE_THRESHOLD, OLD_THRESHOLD)
