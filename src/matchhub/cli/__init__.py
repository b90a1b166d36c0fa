"""The operator CLI, ``matchhub``: run on the broker host. Every change it makes is audited."""
