"""What users hold: :class:`AsyncSeedream`, the blocking :class:`Seedream`, and
per-call options.
"""
