"""The HTTP layer: `api.assemble` builds the flask-restx Api, one module per concern or protocol.

Kept empty on purpose: gunicorn's master imports `api.front.worker` (the worker class) before
forking, and whatever this package imported would sit in the master's memory too.
"""
