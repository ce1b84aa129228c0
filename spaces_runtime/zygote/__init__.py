"""App zygotes: a process per (environment, SDK) that has imported the SDK and forks apps.

``entry``, ``wire`` and ``enter`` run inside the app's virtualenv interpreter and import only the standard library
(the SDK is imported by ``entry``); ``pool`` is the platform's side. Kept import-free, like the package above.
"""
