"""Sending requests and moving bytes: the pooled transport, the one retry
driver, the API's endpoint, uploads, downloads, bounded reads, error answers.
"""
