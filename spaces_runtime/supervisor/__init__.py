"""Supervisor: desired state → backend (process | docker); health probes, restarts, stages, logs, sleep."""
