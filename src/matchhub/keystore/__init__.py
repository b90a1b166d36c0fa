"""The hub's key material: its CA and certificates, the broker key, the audit keys, and the
registry of matching-key versions (ids only; the matching key itself never reaches the broker)."""
