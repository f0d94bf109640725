"""What crosses the wire: API answers parsed leniently, edit requests validated
strictly, prices, the balance, raw answers kept for debugging.
"""
