"""Each serving process holds its share of an agency's lookup rate (kit/ratelimit.py)."""

from __future__ import annotations

from matchhub.kit.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _admitted(limiter: RateLimiter, key: str, requests: int) -> int:
    return sum(limiter.acquire(key) == 0.0 for _ in range(requests))


def test_n_processes_each_hold_a_nth_of_the_rate_and_the_burst() -> None:
    clock = Clock()
    processes = [RateLimiter(10.0, 40, clock) for _ in range(4)]
    for limiter in processes:
        limiter.set_share(4)
    assert sum(_admitted(p, "molsa", 100) for p in processes) == 40  # one burst between them
    clock.now += 2.0  # 10/s for 2 s, a quarter each
    assert sum(_admitted(p, "molsa", 100) for p in processes) == 20
    assert _admitted(processes[0], "other", 100) == 10  # agencies have their own buckets


def test_a_share_that_shrinks_caps_what_is_saved_and_the_wait_follows_the_share() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 10, clock)
    assert _admitted(limiter, "molsa", 4) == 4  # 6 left of 10
    limiter.set_share(2)  # a second process arrived: at most 5 now, refilled at 1/s
    assert _admitted(limiter, "molsa", 100) == 5
    assert limiter.acquire("molsa") == 1.0
    limiter.set_share(0)  # never below one process
    assert limiter.share == 1
