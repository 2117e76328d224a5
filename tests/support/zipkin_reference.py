"""The reference encoder of tests/zipkin_python.rs: reads spans from an OTLP/JSON
lines file (what workflow-otel's file exporter wrote), rebuilds them as the
OpenTelemetry Python SDK's ReadableSpan, and posts them with the SDK's own
Zipkin JSON v2 exporter (opentelemetry-exporter-zipkin-json) to the URL given.

    python zipkin_reference.py SPANS.jsonl URL
"""

import json
import sys

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

KINDS = {
    1: SpanKind.INTERNAL,
    2: SpanKind.SERVER,
    3: SpanKind.CLIENT,
    4: SpanKind.PRODUCER,
    5: SpanKind.CONSUMER,
}


def any_value(value):
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(member) for member in value["arrayValue"].get("values", [])]
    raise ValueError(f"unexpected value {value}")


def attributes(members, dropped=0):
    bounded = BoundedAttributes(
        maxlen=None,
        attributes={member["key"]: any_value(member["value"]) for member in members},
        immutable=False,
    )
    bounded.dropped = dropped
    return bounded


def span_of(span, resource, scope):
    trace_id = int(span["traceId"], 16)
    flags = int(span.get("flags", 0))
    context = SpanContext(
        trace_id, int(span["spanId"], 16), is_remote=False, trace_flags=TraceFlags(flags & 0xFF)
    )
    parent = None
    if span.get("parentSpanId"):
        parent = SpanContext(
            trace_id,
            int(span["parentSpanId"], 16),
            is_remote=bool(flags & 0x200),
            trace_flags=TraceFlags(flags & 0xFF),
        )
    events = BoundedList(None)
    for event in span.get("events", []):
        events.append(
            Event(
                event["name"],
                attributes(event.get("attributes", [])),
                int(event["timeUnixNano"]),
            )
        )
    events.dropped = int(span.get("droppedEventsCount", 0))
    links = BoundedList(None)
    links.dropped = int(span.get("droppedLinksCount", 0))
    status = span.get("status", {})
    code = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}[status.get("code", 0)]
    return ReadableSpan(
        name=span["name"],
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes(
            span.get("attributes", []), int(span.get("droppedAttributesCount", 0))
        ),
        events=events,
        links=links,
        kind=KINDS[span.get("kind", 1)],
        status=Status(code, status.get("message")),
        start_time=int(span["startTimeUnixNano"]),
        end_time=int(span["endTimeUnixNano"]),
        instrumentation_scope=scope,
    )


def main():
    path, url = sys.argv[1], sys.argv[2]
    spans = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            for resource_spans in json.loads(line)["resourceSpans"]:
                resource = Resource(
                    {
                        member["key"]: any_value(member["value"])
                        for member in resource_spans["resource"].get("attributes", [])
                    }
                )
                for scope_spans in resource_spans["scopeSpans"]:
                    scope = InstrumentationScope(
                        scope_spans["scope"].get("name", ""),
                        scope_spans["scope"].get("version"),
                    )
                    for span in scope_spans["spans"]:
                        spans.append(span_of(span, resource, scope))
    exporter = ZipkinExporter(endpoint=url, timeout=10)
    result = exporter.export(spans)
    exporter.shutdown()
    print(f"{len(spans)} spans: {result.name}")
    sys.exit(0 if result.name == "SUCCESS" else 1)


if __name__ == "__main__":
    main()
