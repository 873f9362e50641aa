"""The web dashboard: server-rendered pages over the scoring server's data, read-only.

:func:`aar.web.routes.mount` adds it under ``/dashboard`` to the scoring server (same process, same
tokens, same visibility rules as the API); :mod:`aar.web.standalone` serves it alone on a campaign's
database opened read-only (``aar dashboard DIR``, and the live view ``aar campaign`` prints).
"""
