//! The service's instruments in the Prometheus text formats, named by the
//! OpenTelemetry → Prometheus compatibility rules:
//!
//! - the name with every character but letters, digits, `_` and `:` made
//!   `_` (runs of `_` folded into one, a leading digit given a `_`);
//! - the unit as a suffix, in words (`s` → `seconds`, `By` → `bytes`,
//!   `m/s` → `meters_per_second`, `1` → `ratio` on gauges; annotations in
//!   braces such as `{request}` dropped; other units kept as written), unless
//!   the name already ends with it;
//! - `_total` on monotonic sums (counters); up-down counters are gauges;
//! - `otel_scope_name` and `otel_scope_version` (and the scope's schema URL
//!   and attributes, as `otel_scope_schema_url`, `otel_scope_<key>`) on
//!   every sample, so instruments of two meters with one name stay apart;
//! - attribute keys as label names by the same character rule; keys that
//!   become the same label have their values joined with `;`, ordered by key.

use std::fmt::Write as _;

use crate::metrics::encode::{
    Format, float, label_name, label_set, write_exemplar, write_histogram,
};
use crate::metrics::instruments::InstrumentSnapshot;
use crate::metrics::instruments::instrument::{DataKind, InstrumentKind, NumberValue};

/// Families workflow-otel's own metrics are written as.
const RESERVED: [&str; 11] = [
    "target_info",
    "workflow_duration_seconds",
    "workflow_step_duration_seconds",
    "workflow_calls_total",
    "workflow_step_calls_total",
    "workflow_failures_total",
    "workflow_step_failures_total",
    "workflow_active",
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_client_token_usage",
    "workflow_gen_ai_cost_total",
];

pub(crate) fn is_reserved(family: &str) -> bool {
    RESERVED.contains(&family)
}

/// The Prometheus type an instrument's family has.
pub(crate) fn family_type(kind: InstrumentKind) -> &'static str {
    match kind.data() {
        DataKind::MonotonicSum => "counter",
        DataKind::Sum | DataKind::Gauge => "gauge",
        DataKind::Histogram => "histogram",
    }
}

/// The unit in Prometheus's words, or `None` for a unit that adds no suffix.
fn unit_words(unit: &str, kind: InstrumentKind) -> Option<String> {
    // Annotations in braces are for humans, not part of the name.
    let mut plain = String::with_capacity(unit.len());
    let mut depth = 0_usize;
    for character in unit.chars() {
        match character {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(character),
            _ => {}
        }
    }
    let plain = plain.trim();
    if plain.is_empty() {
        return None;
    }
    if plain == "1" {
        return (kind.data() == DataKind::Gauge).then(|| "ratio".to_owned());
    }
    let words = match plain.split_once('/') {
        Some((per, base)) if !per.is_empty() && !base.is_empty() => {
            format!("{}_per_{}", word(per), per_word(base))
        }
        _ => word(plain),
    };
    Some(words)
}

fn word(unit: &str) -> String {
    let known = match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => return other.to_owned(),
    };
    known.to_owned()
}

fn per_word(unit: &str) -> String {
    let known = match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => return word(other),
    };
    known.to_owned()
}

/// Letters, digits, `_` and `:` kept, anything else `_`, runs of `_` folded.
fn sanitize(text: &str) -> String {
    let mut name = String::with_capacity(text.len());
    for character in text.chars() {
        let character = if character.is_ascii_alphanumeric() || character == ':' {
            character
        } else {
            '_'
        };
        if !(character == '_' && name.ends_with('_')) {
            name.push(character);
        }
    }
    if name.starts_with(|first: char| first.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The family name of an instrument: for counters, with `_total` (the
/// OpenMetrics family drops it again).
pub(crate) fn family_name(name: &str, unit: &str, kind: InstrumentKind) -> String {
    let mut family = sanitize(name);
    let counter = kind.data() == DataKind::MonotonicSum;
    if counter && let Some(base) = family.strip_suffix("_total") {
        family = base.to_owned();
    }
    if let Some(words) = unit_words(unit, kind) {
        let words = sanitize(&words);
        let words = words.trim_matches('_');
        if !words.is_empty() && !family.ends_with(&format!("_{words}")) && family != words {
            family.push('_');
            family.push_str(words);
        }
    }
    if counter {
        family.push_str("_total");
    }
    family
}

/// The unit words of a family whose name ends with them (what OpenMetrics's
/// `# UNIT` may say).
fn family_unit(family: &str, unit: &str, kind: InstrumentKind) -> Option<String> {
    let base = family.strip_suffix("_total").unwrap_or(family);
    let words = unit_words(unit, kind)?;
    let words = sanitize(&words).trim_matches('_').to_owned();
    (!words.is_empty() && base.ends_with(&format!("_{words}"))).then_some(words)
}

/// A sample's labels: the scope's, then the attributes' (keys that collide
/// once sanitized have their values joined, ordered by key).
fn labels(
    snapshot: &InstrumentSnapshot,
    attributes: &[opentelemetry::KeyValue],
) -> Vec<(String, String)> {
    let scope = &snapshot.instrument.scope;
    let mut labels = vec![("otel_scope_name".to_owned(), scope.name.clone())];
    if !scope.version.is_empty() {
        labels.push(("otel_scope_version".to_owned(), scope.version.clone()));
    }
    if !scope.schema_url.is_empty() {
        labels.push(("otel_scope_schema_url".to_owned(), scope.schema_url.clone()));
    }
    for attribute in &scope.attributes {
        labels.push((
            format!("otel_scope_{}", label_name(attribute.key.as_str())),
            attribute.value.as_str().into_owned(),
        ));
    }
    let mut sorted: Vec<&opentelemetry::KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    for attribute in sorted {
        let name = label_name(attribute.key.as_str());
        let value = attribute.value.as_str().into_owned();
        match labels.iter_mut().find(|(known, _)| *known == name) {
            Some((_, known)) => {
                known.push(';');
                known.push_str(&value);
            }
            None => labels.push((name, value)),
        }
    }
    labels
}

/// The description as `# HELP`; none for an instrument without one.
fn help(out: &mut String, format: Format, family: &str, description: &str) {
    if description.is_empty() {
        return;
    }
    let _ = write!(out, "# HELP {family} ");
    for character in description.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            other => out.push(other),
        }
    }
    out.push('\n');
}

/// Writes every instrument that has a Prometheus family, a family at a time
/// (instruments of several meters with one family share its header).
pub(crate) fn write(out: &mut String, format: Format, instruments: &[InstrumentSnapshot]) {
    let mut families: Vec<(&str, Vec<&InstrumentSnapshot>)> = Vec::new();
    for snapshot in instruments {
        let Some(family) = snapshot.instrument.prometheus_family.as_deref() else {
            continue;
        };
        match families.iter_mut().find(|(known, _)| *known == family) {
            Some((_, members)) => members.push(snapshot),
            None => families.push((family, vec![snapshot])),
        }
    }
    for (family, members) in families {
        let first = &members[0].instrument;
        let kind = family_type(first.spec.kind);
        let base = family.strip_suffix("_total").filter(|_| kind == "counter");
        let header_name = match (format, base) {
            (Format::OpenMetrics, Some(base)) => base,
            _ => family,
        };
        help(out, format, header_name, &first.spec.description);
        let _ = writeln!(out, "# TYPE {header_name} {kind}");
        if format == Format::OpenMetrics
            && let Some(unit) = family_unit(family, &first.spec.unit, first.spec.kind)
        {
            let _ = writeln!(out, "# UNIT {header_name} {unit}");
        }
        for snapshot in members {
            for point in &snapshot.points {
                let owned = labels(snapshot, &point.attributes);
                let labels: Vec<(&str, &str)> = owned
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                let exemplars = (format == Format::OpenMetrics).then_some(&point.exemplars[..]);
                match &point.histogram {
                    Some(histogram) => write_histogram(
                        out,
                        family,
                        &labels,
                        &snapshot.instrument.spec.bounds,
                        histogram,
                        exemplars,
                    ),
                    None => {
                        let value = match point.value {
                            NumberValue::U64(value) => value.to_string(),
                            NumberValue::I64(value) => value.to_string(),
                            NumberValue::F64(value) => float(value),
                        };
                        out.push_str(family);
                        label_set(out, &labels);
                        out.push(' ');
                        out.push_str(&value);
                        if let Some(Some(exemplar)) = exemplars.and_then(|all| all.first()) {
                            write_exemplar(out, exemplar);
                        }
                        out.push('\n');
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_rules() {
        use InstrumentKind::*;
        let cases = [
            ("orders_placed", "", Counter, "orders_placed_total"),
            ("orders.placed", "{order}", Counter, "orders_placed_total"),
            ("requests_total", "", Counter, "requests_total"),
            ("order_amount", "USD", Histogram, "order_amount_USD"),
            (
                "http.server.duration",
                "s",
                Histogram,
                "http_server_duration_seconds",
            ),
            ("latency_seconds", "s", Histogram, "latency_seconds"),
            ("payload", "By", Histogram, "payload_bytes"),
            ("queue.depth", "{item}", UpDownCounter, "queue_depth"),
            ("speed", "m/s", Gauge, "speed_meters_per_second"),
            (
                "cpu.utilization",
                "1",
                ObservableGauge,
                "cpu_utilization_ratio",
            ),
            ("hits", "1", Counter, "hits_total"),
            ("io.bytes", "By", ObservableCounter, "io_bytes_total"),
            ("9lives", "", Gauge, "_9lives"),
            ("a--b//c", "ms", Histogram, "a_b_c_milliseconds"),
            ("disk.io", "MiBy/s", Gauge, "disk_io_mebibytes_per_second"),
        ];
        for (name, unit, kind, expected) in cases {
            assert_eq!(family_name(name, unit, kind), expected, "{name} {unit}");
        }
        assert_eq!(
            family_unit("http_server_duration_seconds", "s", Histogram),
            Some("seconds".to_owned())
        );
        assert_eq!(family_unit("orders_placed_total", "{order}", Counter), None);
    }
}
