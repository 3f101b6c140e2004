"""The async engine layer: everything that touches containers goes through `engine.Engine`.

Kept empty so that light modules (address, endpoints, spec) import without asyncio.
"""
