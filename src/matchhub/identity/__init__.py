"""Who is calling: mutual-TLS client certificate → registered agency → kind → scopes."""
