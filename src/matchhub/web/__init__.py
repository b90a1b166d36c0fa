"""The HTTP side of the broker: the app and its server, and the request's unit of work (its
transaction, the read-only engine, the audit recorder and the group-commit writer, admission).
It composes the domains and sits above all of them."""
