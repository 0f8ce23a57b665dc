"""Delivery: from the processor's queue to every exporter, with every record accounted for.

The parts, each a module read in one sitting: :mod:`.intake` (the queue and its thread),
:mod:`.route` (one per exporter, on its own thread), :mod:`.backlog` (records waiting in
memory, and the one handle on the spool), :mod:`.policy` (when to try again, how much, when
to give up), :mod:`.outcome` (reading what an exporter answered), :mod:`.ledger` (every count,
reason, metric and the loss log; the balance that holds at every instant) and
:mod:`.progress` (the signal flush and shutdown wait on). ``otel_feedback._export.engine``
wires them together.
"""
