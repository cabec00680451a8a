# tests/lib/wait.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Condition polling with a deadline. This is the ONLY waiting primitive the
# tests use: the loop ends as soon as the condition holds; the short pause
# between polls merely avoids spinning a core (the machine has two). Nothing
# ever sleeps a fixed time in the hope that something has happened.

from __future__ import annotations

import threading
import time

_never = threading.Event()


def poll_until(cond, timeout: float = 10.0, interval: float = 0.005) -> bool:
    """Call cond() until it returns truthy (-> True) or `timeout` passes (-> False)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        _never.wait(min(interval, max(0.0, deadline - time.monotonic())))


def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    """Like poll_until but raises AssertionError naming `what` at the deadline."""
    if not poll_until(cond, timeout):
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
