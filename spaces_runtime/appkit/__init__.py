"""What runs inside apps, and how it gets there.

Apps import ``spaces_runtime.client`` (Runner, AsyncRunner, pipeline, the typed errors) and ``spaces`` (the
ZeroGPU shim) inside their own small environments, which have no platform dependencies: everything here except
``install`` needs only the standard library and numpy, and ``install`` copies exactly those modules into
``{data_dir}/appkit`` for the apps' PYTHONPATH (mounted read-only into containers).

- ``wire``: the message and frame formats both ends speak, and the error codes they carry.
- ``address``, ``sync``, ``aio``: where the runner is, and the synchronous and asyncio clients.
- ``pipeline``: the transformers-style one-liners.
- ``spaces/``: ``import spaces`` for apps written for Hugging Face ZeroGPU.
- ``install``: the copy into the data dir, the shim's package metadata, and the env vars apps get.

Kept import-free on purpose, like the package above it.
"""
