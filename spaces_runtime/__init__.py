"""spaces-runtime: a self-hosted Hugging Face Spaces.

Kept import-free on purpose: apps import ``spaces_runtime.client`` inside their own small
environments, which must not drag the platform's dependencies along.
"""

__version__ = "0.1.0"
