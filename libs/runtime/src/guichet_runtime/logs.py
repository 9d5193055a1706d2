"""Log records as text (development) or as one JSON object per line carrying the trace
and span ids of the current span (`LOG_FORMAT=json`, production: a log line leads to
its trace and back)."""

from __future__ import annotations

import datetime as dt
import json
import logging

from opentelemetry import trace

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """timestamp (UTC, ISO 8601), level, logger, message, service, trace_id, span_id;
    exception when there is one."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ctx = trace.get_current_span().get_span_context()
        at = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        line: dict[str, object] = {
            "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else None,
            "span_id": format(ctx.span_id, "016x") if ctx.is_valid else None,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(service: str, level: str, log_format: str = "text") -> None:
    """Configure the root logger once per process. `json`: the root's stream handlers
    write JSON lines (uvicorn's loggers propagate to it, see `service.serve`)."""
    root = logging.getLogger()
    if log_format.lower() != "json":
        logging.basicConfig(level=level, format=TEXT_FORMAT)
        return
    root.setLevel(level)
    streams = [h for h in root.handlers if type(h) is logging.StreamHandler]
    if not streams:
        streams = [logging.StreamHandler()]
        root.addHandler(streams[0])
    for handler in streams:
        handler.setFormatter(JsonFormatter(service))
