"""The WebRTC side of the service: one module per protocol object.

:mod:`~server.rtc.relay` keeps the newest decoded frame of a browser's camera; :mod:`~server.rtc.track` is the
corrected track sent back; :mod:`~server.rtc.scheduler` batches all sessions' network calls;
:mod:`~server.rtc.session` ties a peer connection to its corrector, settings and statistics;
:mod:`~server.rtc.registry` holds the sessions; :mod:`~server.rtc.datachannel` speaks the data-channel protocol.
"""
