"""Webhook completion: signature checks, per-attempt tokens, deliveries, the ASGI
receiver and its small listener, and the client's waiter.
"""
