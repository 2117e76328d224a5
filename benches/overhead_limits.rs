//! Span limits: a step that sets 200 attributes under the default limit of
//! 128 (the caller drops the rest as they come, the worker cuts the total to
//! 128 and counts), the same step under a limit it does not reach, strings
//! cut to a length limit, and the SDK's own span under its own limit.

use std::sync::LazyLock;

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use workflow_otel::SpanLimits;

use super::*;

/// The attributes' keys: static, as a program's would be.
static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    (0..200)
        .map(|index| &*Box::leak(format!("attribute.{index}").into_boxed_str()))
        .collect()
});

/// A 200-character value.
const LONG: &str = concat!(
    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd",
);

#[workflow_otel::step]
fn wo_step_with_200_attributes(x: u64) -> u64 {
    for (index, key) in KEYS.iter().enumerate() {
        workflow_otel::set_attribute(KeyValue::new(*key, index as i64));
    }
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn wo_parent_of_wide_steps(iterations: u64) {
    for i in 0..iterations {
        wo_step_with_200_attributes(i);
    }
}

#[workflow_otel::step]
fn wo_step_with_long_strings(x: u64) -> u64 {
    for key in &KEYS[..20] {
        workflow_otel::set_attribute(KeyValue::new(*key, LONG));
    }
    black_box(x + 1)
}

#[workflow_otel::workflow]
fn wo_parent_of_long_strings(iterations: u64) {
    for i in 0..iterations {
        wo_step_with_long_strings(i);
    }
}

/// The SDK's span with 200 attributes, under the SDK's default limit (128).
fn sdk_wide_case(name: &'static str) -> Case {
    let exporter = CountingExporter::default();
    let provider = provider(Sampler::AlwaysOn, exporter.clone());
    let tracer = provider.tracer("bench");
    Case {
        name,
        spans_per_iteration: 1,
        spans_per_run: 1,
        delivered: sdk_delivered(&provider, &exporter),
        run: Box::new(move |iterations| {
            tracer.in_span("parent", |_| {
                for i in 0..iterations {
                    tracer.in_span("raw", |cx| {
                        let span = cx.span();
                        for (index, key) in KEYS.iter().enumerate() {
                            span.set_attribute(KeyValue::new(*key, index as i64));
                        }
                        black_box(i + 1)
                    });
                }
            });
        }),
        records: true,
        roots_every: 0,
    }
}

pub(super) fn factories() -> Vec<(&'static str, Factory)> {
    let unreached = SpanLimits {
        attribute_count: 1_000,
        ..SpanLimits::default()
    };
    let cut_to_64 = SpanLimits {
        attribute_value_length: Some(64),
        ..SpanLimits::default()
    };
    vec![
        (
            "wo #[step], 200 attributes (limit 128)",
            Box::new(|| {
                json_lines_case(
                    "wo #[step], 200 attributes (limit 128)",
                    wo_parent_of_wide_steps,
                )
            }),
        ),
        (
            "wo #[step], 200 attributes (limit 1000)",
            Box::new(move || {
                json_lines_case_with(
                    "wo #[step], 200 attributes (limit 1000)",
                    unreached,
                    wo_parent_of_wide_steps,
                )
            }),
        ),
        (
            "wo #[step], 200 attributes (limit 128), an exporter of SpanData",
            Box::new(|| {
                span_data_case(
                    "wo #[step], 200 attributes (limit 128), an exporter of SpanData",
                    wo_parent_of_wide_steps,
                )
            }),
        ),
        (
            "raw opentelemetry_sdk span, 200 attributes (limit 128)",
            Box::new(|| sdk_wide_case("raw opentelemetry_sdk span, 200 attributes (limit 128)")),
        ),
        (
            "wo #[step], 20 strings of 200 chars",
            Box::new(|| {
                json_lines_case(
                    "wo #[step], 20 strings of 200 chars",
                    wo_parent_of_long_strings,
                )
            }),
        ),
        (
            "wo #[step], 20 strings of 200 chars cut to 64",
            Box::new(move || {
                json_lines_case_with(
                    "wo #[step], 20 strings of 200 chars cut to 64",
                    cut_to_64,
                    wo_parent_of_long_strings,
                )
            }),
        ),
    ]
}
