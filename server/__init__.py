"""Mirada service: FastAPI control plane and aiortc WebRTC endpoint (arrives with the service issue)."""
