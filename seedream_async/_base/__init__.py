"""The vocabulary every layer shares: constants, exceptions, the secret key, the
version, the observer interface. Imports nothing else of the package.
"""
