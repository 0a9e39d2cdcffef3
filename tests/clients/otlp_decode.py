"""Decodes OTLP/HTTP metric request bodies with OpenTelemetry's own protobuf definitions
(the `opentelemetry-proto` package from PyPI), as a collector would.

  otlp_decode.py BODY_FILE...

prints `METRICS {"<metric name>": [{"attributes": {...}, "value": <number>}, ...], ...}`
with the last data point of each series across all bodies (sums and gauges: their value;
histograms: their count), and `RESOURCE {...}` with the resource attributes. Exits 1 when
a body is not a valid ExportMetricsServiceRequest.
"""

import json
import sys

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


def main():
    metrics = {}
    resource = {}
    for path in sys.argv[1:]:
        request = ExportMetricsServiceRequest()
        with open(path, "rb") as f:
            request.ParseFromString(f.read())
        for rm in request.resource_metrics:
            resource.update(attributes(rm.resource.attributes))
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    points = getattr(m, kind).data_points
                    series = metrics.setdefault(m.name, {})
                    for p in points:
                        attrs = attributes(p.attributes)
                        if kind == "histogram":
                            value = p.count
                        else:
                            value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                        series[json.dumps(attrs, sort_keys=True)] = {"attributes": attrs, "value": value}
    print("RESOURCE " + json.dumps(resource))
    print("METRICS " + json.dumps({name: list(s.values()) for name, s in metrics.items()}))


if __name__ == "__main__":
    main()
