//! One-call setup driven by the standard environment variables: explicit
//! settings win, and a malformed setting is an error that names it.
//!
//! `setup()` installs process-wide defaults, so the one test that installs is
//! alone in this binary; the error test installs nothing.

use std::collections::HashMap;

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use workflow_otel::{setup, step, workflow};

fn environment(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[workflow]
fn nightly_import() {
    parse_rows();
}

#[step]
fn parse_rows() {
    // A library using OpenTelemetry's global API inside our step.
    opentelemetry::global::tracer_provider()
        .tracer("csv-lib")
        .in_span("read_csv", |_| ());
}

#[test]
fn a_malformed_setting_is_an_error_naming_the_variable_and_its_value() {
    let cases: [&[(&str, &str)]; 5] = [
        &[("OTEL_TRACES_EXPORTER", "jaeger")],
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "often"),
        ],
        &[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")],
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"),
        ],
        &[("OTEL_RESOURCE_ATTRIBUTES", "team")],
    ];
    for pairs in cases {
        let (name, value) = pairs[pairs.len() - 1];
        let error = setup()
            .environment_from(environment(pairs))
            .try_install()
            .expect_err(name);
        assert_eq!(
            (error.setting.as_str(), error.value.as_str()),
            (name, value)
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("{name}={value:?}: ")),
            "{error}"
        );
    }
    let error = setup()
        .environment_from(environment(&[
            ("OTEL_TRACES_EXPORTER", "jsonl"),
            ("WORKFLOW_OTEL_FILE", "/nonexistent/dir/t.jsonl"),
        ]))
        .try_install()
        .unwrap_err();
    assert_eq!(error.setting, "WORKFLOW_OTEL_FILE");
}

fn requests(path: &std::path::Path) -> Vec<ExportTraceServiceRequest> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The text of resource attribute `key` in the first request of a file.
fn resource_attribute(lines: &[ExportTraceServiceRequest], key: &str) -> String {
    let resource = lines[0].resource_spans[0].resource.as_ref().unwrap();
    text(
        &resource
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .unwrap()
            .value,
    )
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn the_environment_alone_sends_spans_to_a_file_and_code_overrides_it() {
    let directory =
        std::env::temp_dir().join(format!("workflow-otel-setup-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let from_env = directory.join("env.jsonl");
    let variables = [
        ("OTEL_TRACES_EXPORTER", "jsonl"),
        ("WORKFLOW_OTEL_FILE", from_env.to_str().unwrap()),
        ("OTEL_SERVICE_NAME", "from-env"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=payments,region=eu%2Dwest"),
    ];
    let telemetry = setup()
        .environment_from(environment(&variables))
        .try_install()
        .unwrap();
    nightly_import();
    drop(telemetry);

    let lines = requests(&from_env);
    let attribute = |key: &str| resource_attribute(&lines, key);
    assert_eq!(attribute("service.name"), "from-env");
    assert_eq!(attribute("team"), "payments");
    assert_eq!(attribute("region"), "eu-west");
    let spans: Vec<_> = lines
        .iter()
        .flat_map(|request| &request.resource_spans)
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .collect();
    let mut names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["nightly_import", "parse_rows", "read_csv"]);
    let read_csv = spans.iter().find(|span| span.name == "read_csv").unwrap();
    let parse_rows = spans.iter().find(|span| span.name == "parse_rows").unwrap();
    assert_eq!(
        read_csv.parent_span_id, parse_rows.span_id,
        "the library's span nests under the step"
    );
    let stamped = read_csv
        .attributes
        .iter()
        .find(|kv| kv.key == "observability.workflow_name")
        .map(|kv| text(&kv.value));
    assert_eq!(stamped.as_deref(), Some("nightly_import"));

    // Explicit settings win over the same variables.
    let explicit = directory.join("explicit.jsonl");
    let telemetry = setup()
        .service_name("explicit")
        .environment("staging")
        .file(&explicit)
        .environment_from(environment(&variables))
        .try_install()
        .unwrap();
    nightly_import();
    drop(telemetry);
    let explicit_lines = requests(&explicit);
    let attribute = |key: &str| resource_attribute(&explicit_lines, key);
    assert_eq!(attribute("service.name"), "explicit");
    assert_eq!(attribute("deployment.environment.name"), "staging");
    assert_eq!(
        std::fs::read_to_string(&from_env).unwrap().lines().count(),
        lines.len(),
        "the env file got nothing more"
    );

    // A default name counts only where nothing else names the service.
    let service_of = |file: &str, pairs: &[(&str, &str)]| {
        let path = directory.join(file);
        let telemetry = setup()
            .default_service_name("default-name")
            .file(&path)
            .environment_from(environment(pairs))
            .try_install()
            .unwrap();
        nightly_import();
        drop(telemetry);
        resource_attribute(&requests(&path), "service.name")
    };
    assert_eq!(service_of("default.jsonl", &[]), "default-name");
    assert_eq!(
        service_of("named.jsonl", &[("OTEL_SERVICE_NAME", "from-env")]),
        "from-env"
    );
    assert_eq!(
        service_of(
            "attributes.jsonl",
            &[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")]
        ),
        "from-attributes"
    );
    std::fs::remove_dir_all(&directory).unwrap();
}
