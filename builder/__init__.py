"""builder: app folder → AppSpec → BuildPlan → environment (uv virtualenv) or container image.

Imports only ``spaces_runtime.config`` and ``spaces_runtime.errors`` from the platform.
"""
