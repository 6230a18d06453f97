"""Mirada service: FastAPI control plane and aiortc WebRTC endpoint (``mirada serve``)."""
