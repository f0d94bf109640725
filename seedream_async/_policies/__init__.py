"""Pure policies, no I/O: backoff, when to retry, how often to poll, rate and
concurrency limits, where to place each poll.
"""
