"""What runs at an agency: the connector client (:mod:`~matchhub.agency.connector`) and, later,
the ministry's desk. It imports the protocol layer and its own code, never the broker."""
