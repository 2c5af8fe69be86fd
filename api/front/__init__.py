"""The HTTP front end: gunicorn worker (worker.py), HTTP/1.1 connections (http.py), the WSGI hand-off
(wsgi.py) and connection balancing between workers (balance.py). Public APIs only: gunicorn's
custom-worker class, asyncio's event loop and protocols, httptools' parser (README "DESIGN notes")."""
