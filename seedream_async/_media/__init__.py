"""Image bytes and files: the type from the first bytes, whether a download is a
whole image, async file streams on asyncio and trio.
"""
