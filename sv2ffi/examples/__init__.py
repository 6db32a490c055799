"""Small runnable programs built on the library (``sv2ffi ping-pong ...``)."""
