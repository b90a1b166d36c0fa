"""The match engine: set-based intersection of a roster with every provider at once. Pure: no
FastAPI, no ORM. It holds a derived, in-memory copy of stored tokens; SQL stays the system of
record, and anything here can be rebuilt from it."""
