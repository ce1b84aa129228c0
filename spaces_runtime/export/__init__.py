"""A space rendered for other platforms (Kubernetes manifests): pure functions from typed inputs to documents."""
