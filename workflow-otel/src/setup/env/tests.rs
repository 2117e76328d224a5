//! The environment read as the specification says: names, values, defaults.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> (EnvSettings, Vec<SetupError>) {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    from_env(|name| map.get(name).cloned())
}

/// The one problem `pairs` give.
fn problem(pairs: &[(&str, &str)]) -> SetupError {
    let (_, problems) = env(pairs);
    assert_eq!(problems.len(), 1, "{pairs:?}: {problems:?}");
    problems[0].clone()
}

#[test]
fn every_malformed_setting_names_its_variable_and_value() {
    let cases = [
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=payments,broken",
            "has no `=`",
        ),
        ("OTEL_RESOURCE_ATTRIBUTES", "=x", "empty key"),
        ("OTEL_RESOURCE_ATTRIBUTES", "k=%zz", "malformed %-escape"),
        ("OTEL_RESOURCE_ATTRIBUTES", "k=%ff", "not UTF-8"),
        (
            "OTEL_TRACES_EXPORTER",
            "otlp,jaeger",
            "unknown exporter `jaeger`",
        ),
        ("OTEL_TRACES_EXPORTER", "none,console", "cannot be combined"),
        ("OTEL_TRACES_SAMPLER", "sometimes", "expected one of"),
        ("OTEL_BSP_SCHEDULE_DELAY", "5s", "milliseconds"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "-1", "milliseconds"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "0", "from 1 to"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "from 1 to"),
        (
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "100000000000",
            "from 1 to 2147483647",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "localhost:4317",
            "http:// or https://",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://",
            "http:// or https://",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:99999",
            "optional port",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/xml",
            "`grpc`, `http/protobuf` or `http/json`",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "from 1 to"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "`gzip` or `none`"),
    ];
    for (name, value, reason) in cases {
        let error = problem(&[(name, value)]);
        assert_eq!(error.setting, name);
        assert_eq!(error.value, value);
        assert!(
            error.reason.contains(reason),
            "{name}={value}: {}",
            error.reason
        );
        assert!(
            error.to_string().starts_with(&format!("{name}=")),
            "{error}"
        );
    }
    let error = problem(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
    ]);
    assert_eq!(
        (error.setting.as_str(), error.value.as_str()),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5")
    );
    let error = problem(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
    ]);
    assert_eq!(error.setting, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
}

#[test]
fn a_bad_value_keeps_that_setting_at_its_default_and_the_others_apply() {
    let (settings, problems) = env(&[
        ("OTEL_TRACES_EXPORTER", "jsonl,jaeger"),
        ("WORKFLOW_OTEL_FILE", "/tmp/t.jsonl"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "250"),
    ]);
    let named: Vec<&str> = problems.iter().map(|p| p.setting.as_str()).collect();
    assert_eq!(
        named,
        [
            "OTEL_TRACES_EXPORTER",
            "OTEL_TRACES_SAMPLER",
            "OTEL_BSP_EXPORT_TIMEOUT"
        ]
    );
    // The exporter asked for still counts; the rest keep their defaults.
    assert_eq!(
        settings.exporters,
        Some(vec![ExporterKind::File("/tmp/t.jsonl".into())])
    );
    assert!(settings.sampler.is_none());
    assert_eq!(
        settings.pipeline.export_timeout,
        PipelineConfig::default().export_timeout
    );
    assert_eq!(
        settings.pipeline.scheduled_delay,
        Duration::from_millis(250)
    );
    // A traceidratio with a bad ratio is still a traceidratio, at 1.
    let (settings, _) = env(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "lots"),
    ]);
    assert_eq!(
        format!("{:?}", settings.sampler.unwrap()),
        format!("{:?}", Sampler::TraceIdRatioBased(1.0))
    );
}

#[test]
fn enumerated_values_are_case_insensitive() {
    let (settings, problems) = env(&[
        ("OTEL_TRACES_EXPORTER", "CONSOLE,Otlp"),
        ("OTEL_TRACES_SAMPLER", "ParentBased_TraceIdRatio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/JSON"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
    ]);
    assert_eq!(problems, []);
    assert_eq!(
        settings.exporters,
        Some(vec![ExporterKind::Console, ExporterKind::Otlp])
    );
    assert_eq!(
        format!("{:?}", settings.sampler.unwrap()),
        format!(
            "{:?}",
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.5)))
        )
    );
    assert_eq!(settings.otlp.protocol, Some(OtlpProtocol::HttpJson));
    assert_eq!(settings.otlp.gzip, Some(true));
}

#[test]
fn secrets_never_reach_an_error_message() {
    let secret = "sk-live-0123456789";
    for (name, value) in [
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("api-key {secret}")),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", format!("x=1,{secret}")),
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("=%zz{secret}")),
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("api-key=%zz{secret}")),
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("api-key={secret}%0A")),
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("bad key={secret}")),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://user:{secret}@collector:99999"),
        ),
    ] {
        let error = problem(&[(name, &value)]);
        assert_eq!(error.setting, name, "the variable actually set is named");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn well_formed_settings_are_read() {
    let settings = env(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=pay%20ments, region = eu-west-1 ,",
        ),
        ("OTEL_TRACES_EXPORTER", "otlp, jsonl"),
        ("WORKFLOW_OTEL_FILE", "/tmp/t.jsonl"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-team=a"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Team=b"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_BSP_EXPORT_TIMEOUT", ""),
    ]);
    assert_eq!(settings.1, []);
    let settings = settings.0;
    assert_eq!(settings.service_name.as_deref(), Some("checkout"));
    assert_eq!(
        settings.resource_attributes,
        [
            KeyValue::new("team", "pay ments"),
            KeyValue::new("region", "eu-west-1")
        ]
    );
    assert_eq!(
        settings.exporters,
        Some(vec![
            ExporterKind::Otlp,
            ExporterKind::File("/tmp/t.jsonl".into())
        ])
    );
    assert_eq!(
        format!("{:?}", settings.sampler.unwrap()),
        format!(
            "{:?}",
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.25)))
        )
    );
    assert_eq!(
        settings.pipeline.scheduled_delay,
        Duration::from_millis(250)
    );
    assert_eq!(
        settings.pipeline.export_timeout,
        PipelineConfig::default().export_timeout
    );
    assert_eq!(
        (
            settings.pipeline.max_queue_size,
            settings.pipeline.max_export_batch_size
        ),
        (100, 50)
    );
    let otlp = settings.otlp.settings(None);
    assert_eq!(otlp.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(otlp.protocol, OtlpProtocol::HttpJson);
    assert_eq!(
        otlp.headers,
        [
            ("api-key".to_owned(), "s=cret".to_owned()),
            ("X-Team".to_owned(), "b".to_owned())
        ]
    );
    assert_eq!(otlp.timeout, Duration::from_millis(1500));
    assert!(otlp.gzip);
}

#[test]
fn otlp_defaults_follow_the_protocol() {
    let otlp = OtlpEnv::default();
    assert_eq!(
        otlp.settings(None).endpoint,
        "http://localhost:4318/v1/traces"
    );
    assert_eq!(
        otlp.settings(Some(OtlpProtocol::Grpc)).endpoint,
        "http://localhost:4317"
    );
    let with_base = OtlpEnv {
        base_endpoint: Some("http://collector:4317".into()),
        ..OtlpEnv::default()
    };
    assert_eq!(
        with_base.settings(Some(OtlpProtocol::Grpc)).endpoint,
        "http://collector:4317"
    );
    let with_traces = OtlpEnv {
        base_endpoint: Some("http://ignored:1".into()),
        signal_endpoint: Some("http://tempo:4318/custom".into()),
        ..OtlpEnv::default()
    };
    assert_eq!(
        with_traces.settings(None).endpoint,
        "http://tempo:4318/custom"
    );
}

#[test]
fn metric_settings_are_read_and_checked() {
    let (settings, problems) = env(&[
        ("OTEL_METRICS_EXPORTER", "Prometheus, otlp"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "::1"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "api-key=secret"),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    let metrics = &settings.metrics;
    assert_eq!(
        metrics.exporters,
        Some(vec![
            MetricExporterKind::Prometheus,
            MetricExporterKind::Otlp
        ])
    );
    assert_eq!(metrics.interval, Some(Duration::from_secs(15)));
    assert_eq!(metrics.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(
        metrics.prometheus_address(),
        ("[::1]:9999".to_owned(), "OTEL_EXPORTER_PROMETHEUS_PORT")
    );
    // Metrics take the general OTLP settings with their own path, and their
    // own variables over them; traces are not affected.
    let otlp = settings.otlp_metrics.settings(None);
    assert_eq!(otlp.endpoint, "http://collector:4318/v1/metrics");
    assert_eq!(otlp.protocol, OtlpProtocol::HttpJson);
    assert_eq!(
        otlp.headers,
        vec![("api-key".to_owned(), "secret".to_owned())]
    );
    let traces = settings.otlp.settings(None);
    assert_eq!(traces.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(traces.protocol, OtlpProtocol::HttpProtobuf);
    assert!(traces.headers.is_empty());
    assert_eq!(
        env(&[]).0.metrics.prometheus_address(),
        (
            "localhost:9464".to_owned(),
            "the default Prometheus address"
        )
    );
}

#[test]
fn malformed_metric_settings_name_their_variable() {
    for (name, value, reason) in [
        (
            "OTEL_METRICS_EXPORTER",
            "otlp,statsd",
            "unknown exporter `statsd`",
        ),
        (
            "OTEL_METRICS_EXPORTER",
            "none,prometheus",
            "cannot be combined",
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1m", "milliseconds"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "0", "milliseconds"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "port number"),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "local host", "host name"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "delta",
            "only `cumulative`",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "collector:4318",
            "URL",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
            "zstd",
            "`gzip` or `none`",
        ),
    ] {
        let error = problem(&[(name, value)]);
        assert_eq!(error.setting, name);
        assert!(error.reason.contains(reason), "{name}={value}: {error}");
    }
    // The others still count.
    let (settings, problems) = env(&[
        ("OTEL_METRICS_EXPORTER", "console,statsd"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "x"),
    ]);
    assert_eq!(problems.len(), 2);
    assert_eq!(
        settings.metrics.exporters,
        Some(vec![MetricExporterKind::Console])
    );
    assert_eq!(settings.metrics.prometheus_port, None);
}

#[test]
fn tls_and_log_settings_are_read_per_signal() {
    let (settings, problems) = env(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
        ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/etc/logs-ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client-key.pem"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "TRUE"),
        ("OTEL_LOGS_EXPORTER", "otlp,Console"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
        ("RUST_LOG", "info,shop=debug"),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    let traces = settings.otlp.settings(None);
    assert_eq!(traces.tls.certificate, Some(PathBuf::from("/etc/ca.pem")));
    assert_eq!(
        traces.tls.client_certificate,
        Some(PathBuf::from("/etc/client.pem"))
    );
    assert_eq!(
        traces.tls.client_key,
        Some(PathBuf::from("/etc/client-key.pem"))
    );
    let logs = settings.otlp_logs.settings(None);
    assert_eq!(
        logs.tls.certificate,
        Some(PathBuf::from("/etc/logs-ca.pem"))
    );
    assert_eq!(logs.endpoint, "https://collector:4318/v1/logs");
    assert_eq!(settings.otlp.insecure, Some(true));
    assert_eq!(
        settings.log_exporters,
        Some(vec![LogExporterKind::Otlp, LogExporterKind::Console])
    );
    assert_eq!(settings.rust_log.as_deref(), Some("info,shop=debug"));
    for (name, value, reason) in [
        ("OTEL_EXPORTER_OTLP_INSECURE", "yes", "`true` or `false`"),
        (
            "OTEL_LOGS_EXPORTER",
            "otlp,syslog",
            "unknown exporter `syslog`",
        ),
    ] {
        let error = problem(&[(name, value)]);
        assert_eq!(error.setting, name);
        assert!(error.reason.contains(reason), "{error}");
    }
}

#[test]
fn span_limits_take_the_specific_variable_then_the_general_one_then_the_default() {
    use crate::pipeline::SpanLimits;
    assert_eq!(env(&[]).0.pipeline.span_limits, SpanLimits::default());
    let (settings, problems) = env(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "64"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "256"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "32"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1024"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "10"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "0"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "3"),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        settings.pipeline.span_limits,
        SpanLimits {
            attribute_count: 32,
            attribute_value_length: Some(1024),
            event_count: 10,
            link_count: 0,
            // No variable of its own: the general count.
            event_attribute_count: 64,
            link_attribute_count: 3,
            // Events and links take the general length.
            event_and_link_value_length: Some(256),
        }
    );
    let (settings, _) = env(&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100")]);
    assert_eq!(
        settings.pipeline.span_limits.attribute_value_length,
        Some(100)
    );
    for bad in ["-1", "1.5", "lots", "4294967296"] {
        let found = problem(&[("OTEL_SPAN_EVENT_COUNT_LIMIT", bad)]);
        assert_eq!(found.setting, "OTEL_SPAN_EVENT_COUNT_LIMIT");
        assert!(found.to_string().contains("whole number"), "{found}");
    }
}

#[test]
fn zipkin_is_an_exporter_with_its_endpoint_and_timeout_in_milliseconds() {
    let (settings, problems) = env(&[
        ("OTEL_TRACES_EXPORTER", "zipkin,console"),
        (
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
            "http://zipkin.internal:9411/api/v2/spans",
        ),
        ("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "2500"),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        settings.exporters,
        Some(vec![ExporterKind::Zipkin, ExporterKind::Console])
    );
    assert_eq!(
        settings.zipkin.endpoint.as_deref(),
        Some("http://zipkin.internal:9411/api/v2/spans")
    );
    assert_eq!(settings.zipkin.timeout, Some(Duration::from_millis(2500)));
    let bad_url = problem(&[("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "zipkin:9411")]);
    assert_eq!(bad_url.setting, "OTEL_EXPORTER_ZIPKIN_ENDPOINT");
    let bad_timeout = problem(&[("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "10s")]);
    assert_eq!(bad_timeout.setting, "OTEL_EXPORTER_ZIPKIN_TIMEOUT");
}
