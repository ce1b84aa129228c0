"""The embedded model runner: one process per host owns the accelerator and serves models to every app.

Layout: pure policy (``batching``, ``residency``, ``catalog``, ``metrics``) apart from I/O (``link`` talks to
the ``worker`` subprocess, ``scheduler`` drives batches, ``frames`` is the Unix socket's transport, ``server``
holds ``RunnerService`` and the HTTP edge for TCP).
"""
