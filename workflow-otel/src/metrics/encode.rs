//! The text exposition formats: Prometheus text 0.0.4 (what a plain
//! `curl` or an old scraper gets) and OpenMetrics 1.0 (what Prometheus asks
//! for, and the only one that carries exemplars). Both are written from the
//! same snapshot; names follow the OpenTelemetry-to-Prometheus rules (dots
//! become underscores, the unit is a suffix, counters end in `_total`).

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use opentelemetry::KeyValue;

use crate::metrics::exemplar::Exemplar;
use crate::metrics::genai::{DURATION_BUCKETS, ModelSeries, TOKEN_BUCKETS};
use crate::metrics::instruments::InstrumentSnapshot;
use crate::metrics::series::{self, Histogram, Outcome, SeriesKind, SeriesSnapshot};
use crate::record::ids::Calibration;

/// The two formats a scraper can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Prometheus,
    OpenMetrics,
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn accept_weights_choose_the_format() {
        let cases = [
            ("", Format::Prometheus),
            ("text/plain", Format::Prometheus),
            // What Prometheus sends.
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                Format::OpenMetrics,
            ),
            ("application/openmetrics-text", Format::OpenMetrics),
            (
                "Application/OpenMetrics-Text; Q=0.3, text/plain;q=0.2",
                Format::OpenMetrics,
            ),
            ("application/openmetrics-text;q=0", Format::Prometheus),
            (
                "application/openmetrics-text;q=0.0, text/plain",
                Format::Prometheus,
            ),
            (
                "text/plain;q=1, application/openmetrics-text;q=0.5",
                Format::Prometheus,
            ),
            (
                "application/openmetrics-text;q=nonsense",
                Format::Prometheus,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::from_accept(accept), expected, "{accept}");
        }
    }
}

impl Format {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics if the `Accept` header asks for it (as Prometheus does)
    /// at least as much as for the text format, by the media ranges' `q`
    /// weights (RFC 9110): `application/openmetrics-text;q=0` is a refusal.
    pub(crate) fn from_accept(accept: &str) -> Format {
        let (mut open_metrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|parameter| parameter.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, value)| {
                    value.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0)
                });
            match media.as_str() {
                "application/openmetrics-text" => open_metrics = open_metrics.max(weight),
                "text/plain" | "text/*" | "*/*" => text = text.max(weight),
                _ => {}
            }
        }
        if open_metrics > 0.0 && open_metrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// All series as they are now, with the bounds they share.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) bounds: Vec<f64>,
    pub(crate) series: Vec<SeriesSnapshot>,
    /// Model calls' series.
    pub(crate) models: Vec<ModelSeries>,
    /// The service's own instruments ([`crate::metrics::meter_provider`]).
    pub(crate) instruments: Vec<InstrumentSnapshot>,
}

/// Reads every series; empty while metrics are off.
pub(crate) fn snapshot() -> Snapshot {
    let calibration = Calibration::now();
    let instruments = crate::metrics::instruments::snapshot(&calibration);
    let Some(state) = series::state() else {
        return Snapshot {
            instruments,
            ..Snapshot::default()
        };
    };
    Snapshot {
        models: crate::metrics::genai::snapshot(),
        instruments,
        bounds: state.bounds_seconds.clone(),
        series: state
            .series()
            .into_iter()
            .map(|series| series.snapshot(&calibration))
            .collect(),
    }
}

/// A metric family: its name (without `_total`) and its help text.
struct Family {
    name: &'static str,
    help: &'static str,
}

const WORKFLOW_DURATION: Family = Family {
    name: "workflow_duration_seconds",
    help: "Duration of workflow runs (root and child workflows), in seconds.",
};
const STEP_DURATION: Family = Family {
    name: "workflow_step_duration_seconds",
    help: "Duration of step calls, in seconds.",
};
const WORKFLOW_CALLS: Family = Family {
    name: "workflow_calls",
    help: "Workflow runs by outcome (ok, error, panic, cancelled).",
};
const STEP_CALLS: Family = Family {
    name: "workflow_step_calls",
    help: "Step calls by outcome (ok, error, panic, cancelled).",
};
const WORKFLOW_FAILURES: Family = Family {
    name: "workflow_failures",
    help: "Failed workflow runs by error type.",
};
const STEP_FAILURES: Family = Family {
    name: "workflow_step_failures",
    help: "Failed step calls by error type.",
};
const WORKFLOW_ACTIVE: Family = Family {
    name: "workflow_active",
    help: "Workflow runs in flight.",
};
const MODEL_DURATION: Family = Family {
    name: "gen_ai_client_operation_duration_seconds",
    help: "GenAI operation duration (model calls), in seconds.",
};
const MODEL_TOKENS: Family = Family {
    name: "gen_ai_client_token_usage",
    help: "Tokens used by model calls, input and output.",
};
const MODEL_COST: Family = Family {
    name: "workflow_gen_ai_cost",
    help: "Cost of model calls, from the price table, in its currency.",
};

type Labels<'a> = Vec<(&'a str, &'a str)>;

/// The exposition of `snapshot` in `format`, with the resource as `target_info`.
pub(crate) fn encode(snapshot: &Snapshot, format: Format, resource: &[KeyValue]) -> String {
    let mut out = String::with_capacity(1024 + snapshot.series.len() * 2048);
    target_info(&mut out, format, resource);
    let kinds = [
        (
            SeriesKind::Workflow,
            WORKFLOW_DURATION,
            WORKFLOW_CALLS,
            WORKFLOW_FAILURES,
        ),
        (SeriesKind::Step, STEP_DURATION, STEP_CALLS, STEP_FAILURES),
    ];
    for (kind, duration, _, _) in &kinds {
        let members = members(snapshot, *kind);
        if members.is_empty() {
            continue;
        }
        header(&mut out, format, duration, "histogram", Some("seconds"));
        for series in members {
            let exemplars = (format == Format::OpenMetrics).then_some(&series.exemplars[..]);
            write_histogram(
                &mut out,
                duration.name,
                &series_labels(series),
                &snapshot.bounds,
                &series.duration,
                exemplars,
            );
        }
    }
    for (kind, _, calls, _) in &kinds {
        let members = members(snapshot, *kind);
        if members.is_empty() {
            continue;
        }
        header(&mut out, format, calls, "counter", None);
        for series in members {
            for outcome in Outcome::ALL {
                let labels = with(series_labels(series), ("outcome", outcome.as_str()));
                sample(
                    &mut out,
                    calls.name,
                    "_total",
                    &labels,
                    series.outcomes[outcome as usize],
                );
            }
        }
    }
    for (kind, _, _, failures) in &kinds {
        let members: Vec<_> = members(snapshot, *kind)
            .into_iter()
            .filter(|series| !series.failures.is_empty())
            .collect();
        if members.is_empty() {
            continue;
        }
        header(&mut out, format, failures, "counter", None);
        for series in members {
            for (error_type, count) in &series.failures {
                let labels = with(series_labels(series), ("error_type", error_type));
                sample(&mut out, failures.name, "_total", &labels, *count);
            }
        }
    }
    let workflows = members(snapshot, SeriesKind::Workflow);
    if !workflows.is_empty() {
        header(&mut out, format, &WORKFLOW_ACTIVE, "gauge", None);
        for series in workflows {
            sample(
                &mut out,
                WORKFLOW_ACTIVE.name,
                "",
                &series_labels(series),
                series.active,
            );
        }
    }
    model_families(&mut out, format, &snapshot.models);
    crate::metrics::instruments::prometheus::write(&mut out, format, &snapshot.instruments);
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// A workflow or step series' labels, as Prometheus names them.
fn series_labels(series: &SeriesSnapshot) -> Labels<'_> {
    let mut labels = vec![("workflow_name", series.workflow)];
    if series.kind == SeriesKind::Step {
        labels.push(("step_name", series.step));
    }
    labels
}

/// A model series' labels, as Prometheus names them.
fn model_labels(series: &ModelSeries) -> Labels<'_> {
    let mut labels = vec![
        ("gen_ai_operation_name", series.operation.as_str()),
        ("gen_ai_provider_name", series.provider.as_str()),
        ("gen_ai_request_model", series.model.as_str()),
    ];
    if !series.error_type.is_empty() {
        labels.push(("error_type", series.error_type.as_str()));
    }
    labels
}

fn with<'a>(mut labels: Labels<'a>, label: (&'a str, &'a str)) -> Labels<'a> {
    labels.push(label);
    labels
}

fn model_families(out: &mut String, format: Format, models: &[ModelSeries]) {
    if models.is_empty() {
        return;
    }
    header(out, format, &MODEL_DURATION, "histogram", Some("seconds"));
    fn exemplars(
        format: Format,
        series: &ModelSeries,
        index: usize,
    ) -> Option<&[Option<Exemplar>]> {
        (format == Format::OpenMetrics).then_some(&series.exemplars[index][..])
    }
    for series in models {
        write_histogram(
            out,
            MODEL_DURATION.name,
            &model_labels(series),
            &DURATION_BUCKETS,
            &series.duration,
            exemplars(format, series, 0),
        );
    }
    let answered: Vec<&ModelSeries> = models
        .iter()
        .filter(|series| series.input_tokens.count > 0)
        .collect();
    if !answered.is_empty() {
        header(out, format, &MODEL_TOKENS, "histogram", None);
        for series in answered {
            for (token_type, histogram, index) in [
                ("input", &series.input_tokens, 1),
                ("output", &series.output_tokens, 2),
            ] {
                let labels = with(model_labels(series), ("gen_ai_token_type", token_type));
                write_histogram(
                    out,
                    MODEL_TOKENS.name,
                    &labels,
                    &TOKEN_BUCKETS,
                    histogram,
                    exemplars(format, series, index),
                );
            }
        }
    }
    let priced: Vec<&ModelSeries> = models
        .iter()
        .filter(|series| !series.cost.is_empty())
        .collect();
    if !priced.is_empty() {
        header(out, format, &MODEL_COST, "counter", None);
        for series in priced {
            for (currency, total) in &series.cost {
                let labels = vec![
                    ("gen_ai_provider_name", series.provider.as_str()),
                    ("gen_ai_request_model", series.model.as_str()),
                    ("currency", currency.as_str()),
                ];
                sample(out, MODEL_COST.name, "_total", &labels, float(*total));
            }
        }
    }
}

/// A histogram's samples: cumulative buckets (each with its exemplar, when
/// `exemplars` are given), the sum and the count.
pub(crate) fn write_histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
    histogram: &Histogram,
    exemplars: Option<&[Option<Exemplar>]>,
) {
    let mut cumulative = 0;
    for (index, count) in histogram.buckets.iter().enumerate() {
        cumulative += count;
        let bound = bounds
            .get(index)
            .map_or_else(|| "+Inf".to_owned(), |bound| float(*bound));
        out.push_str(name);
        out.push_str("_bucket");
        label_set(out, &with(labels.to_vec(), ("le", &bound)));
        let _ = write!(out, " {cumulative}");
        if let Some(Some(exemplar)) = exemplars.and_then(|exemplars| exemplars.get(index)) {
            write_exemplar(out, exemplar);
        }
        out.push('\n');
    }
    sample(out, name, "_sum", labels, float(histogram.sum));
    sample(out, name, "_count", labels, histogram.count);
}

pub(crate) fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    out.push_str(suffix);
    label_set(out, labels);
    let _ = writeln!(out, " {value}");
}

pub(crate) fn label_set(out: &mut String, labels: &[(&str, &str)]) {
    out.push('{');
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        escape(out, value);
        out.push('"');
    }
    out.push('}');
}

fn members(snapshot: &Snapshot, kind: SeriesKind) -> Vec<&SeriesSnapshot> {
    snapshot
        .series
        .iter()
        .filter(|series| series.kind == kind)
        .collect()
}

fn header(out: &mut String, format: Format, family: &Family, kind: &str, unit: Option<&str>) {
    // OpenMetrics names a counter family without its `_total`; the older
    // format names it as its samples are named.
    let counter_suffix = if kind == "counter" && format == Format::Prometheus {
        "_total"
    } else {
        ""
    };
    let name = family.name;
    let _ = writeln!(out, "# HELP {name}{counter_suffix} {}", family.help);
    let _ = writeln!(out, "# TYPE {name}{counter_suffix} {kind}");
    if let (Some(unit), Format::OpenMetrics) = (unit, format) {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
}

pub(crate) fn write_exemplar(out: &mut String, exemplar: &Exemplar) {
    out.push_str(" # {trace_id=\"");
    hex(out, &exemplar.trace_id);
    out.push_str("\",span_id=\"");
    hex(out, &exemplar.span_id);
    let at = exemplar
        .time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let _ = write!(out, "\"}} {} {at:.3}", float(exemplar.value));
}

fn hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
}

/// A label value as both formats quote it.
pub(crate) fn escape(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

/// A number as Prometheus writes one: shortest round-trip form, `+Inf`, `NaN`.
pub(crate) fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

/// The resource as the `target_info` metric, with attribute keys turned into
/// label names (anything but letters, digits and `_` becomes `_`).
fn target_info(out: &mut String, format: Format, resource: &[KeyValue]) {
    let (family, kind) = match format {
        Format::Prometheus => ("target_info", "gauge"),
        Format::OpenMetrics => ("target", "info"),
    };
    let _ = writeln!(
        out,
        "# HELP {family} Target metadata: the resource's attributes."
    );
    let _ = writeln!(out, "# TYPE {family} {kind}");
    out.push_str("target_info{");
    let mut attributes: Vec<(String, String)> = resource
        .iter()
        .map(|attribute| {
            (
                label_name(attribute.key.as_str()),
                attribute.value.as_str().into_owned(),
            )
        })
        .collect();
    attributes.sort();
    attributes.dedup_by(|a, b| a.0 == b.0);
    for (index, (name, value)) in attributes.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        escape(out, value);
        out.push('"');
    }
    out.push_str("} 1\n");
}

pub(crate) fn label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '_' {
                character
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|first: char| first.is_ascii_digit()) {
        name.insert_str(0, "key_");
    }
    if name.starts_with("__") {
        // Reserved for Prometheus itself.
        name.insert_str(0, "key");
    }
    name
}
