"""The scoring server: the only component that holds ground truth.

Importing this package is cheap; the FastAPI app lives in :mod:`aar.server.app`.
"""
