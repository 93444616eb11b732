"""Prometheus metrics of one app, in its own CollectorRegistry (two apps in one process do not share counts), and
a plain ASGI middleware that counts every HTTP request by route template and status."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("seehear_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram("seehear_request_seconds", "HTTP request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("seehear_errors", "requests answered with an error", ["route", "status"], registry=r)
        self.batch_size = Histogram("seehear_batch_size", "items per model call", ["model"], buckets=BATCH_BUCKETS,
                                    registry=r)
        self.model_seconds = Histogram("seehear_model_seconds", "time of one model call (decode + forward)",
                                       ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("seehear_queue_depth", "items waiting for the model", ["model"], registry=r)
        self.rejected = Counter("seehear_rejected", "requests refused because the queue was full", ["model"],
                                registry=r)
        self.streams = Gauge("seehear_streams_open", "open WebSocket streams", ["model"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times HTTP requests. The route template (/v1/models/{name}/predict), not the raw path, is the
    label: a client cannot grow the label set by asking for random paths."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            m = self.metrics
            m.requests.labels(route, scope["method"], str(status[0])).inc()
            m.latency.labels(route).observe(time.perf_counter() - t0)
            if status[0] >= 400:
                m.errors.labels(route, str(status[0])).inc()
