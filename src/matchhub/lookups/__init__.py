"""Per-beneficiary lookups: a case worker's few tokens, answered in milliseconds, only for
roster members and only with the flags granted for the stated purpose."""
