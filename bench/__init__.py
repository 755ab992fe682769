"""The load generator and its bare-Channels baseline (see docs/performance.md)."""
