"""The export side: the span processor, its delivery engine, the spool, and the exporters."""
