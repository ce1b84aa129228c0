"""Gateway: Host / path → the app's upstream; HTTP, SSE (unbuffered), WebSocket, static sites; wakes sleepers."""
