"""Development fixtures, not the service: the demo, the loopback CDN + video API, frame-coded sample media.

Tests, benchmarks and ``clipline demo`` use them; workers and the API never import them.
"""
