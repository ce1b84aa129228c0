"""The swarm backend's platform side: its image registry and its view of the nodes."""
