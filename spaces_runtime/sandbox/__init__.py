"""The embedded default's isolation: per-space identities, namespaces (bubblewrap), a private network, cgroup
limits, and the host check that refuses to run apps without them (``preflight``, `spaces doctor`)."""
