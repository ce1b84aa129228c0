"""The FastAPI server: REST API, gallery, event streams; the gateway sits in front of it."""
