//! The HTML view: one self-contained file (styles, script and data inline,
//! nothing fetched), working from `file://`. The data is JSON in a script
//! element; the page's script lays out the selected trace's waterfall.

use std::fmt::Write as _;

use crate::compare;
use crate::map;
use crate::model::{Trace, human};
use crate::text::SummaryRow;

const TEMPLATE: &str = include_str!("page.html");

/// Writes `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `</script>` must not end the data early; `<\/` is the same JSON.
            '<' => out.push_str("\\u003c"),
            control
                if (control as u32) < 0x20 || control == '\u{2028}' || control == '\u{2029}' =>
            {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

fn pairs(out: &mut String, pairs: &[(String, String)]) {
    out.push('[');
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('[');
        json_string(out, key);
        out.push(',');
        json_string(out, value);
        out.push(']');
    }
    out.push(']');
}

/// A quantile of a run, `—` where the run has no such span.
fn shown(count: usize, nanos: u64) -> String {
    if count == 0 {
        "—".to_owned()
    } else {
        human(nanos)
    }
}

/// The comparison's rows as JSON.
fn comparison(out: &mut String, rows: &[compare::Row]) {
    out.push('[');
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"kind\":\"{}\",\"name\":", row.key.0.label());
        json_string(out, &row.key.1);
        let [base, candidate] = row.quantiles;
        let _ = write!(
            out,
            ",\"count\":[{},{}],\"errorRate\":[{:.1},{:.1}],\"p50\":[\"{}\",\"{}\"],\"p95\":[\"{}\",\"{}\"],\"p99\":[\"{}\",\"{}\"],\"ratio\":{:.3},\"p\":{},\"verdict\":",
            row.count[0],
            row.count[1],
            row.error_rate[0],
            row.error_rate[1],
            shown(row.count[0], base[0]),
            shown(row.count[1], candidate[0]),
            shown(row.count[0], base[1]),
            shown(row.count[1], candidate[1]),
            shown(row.count[0], base[2]),
            shown(row.count[1], candidate[2]),
            row.ratio(),
            row.p_slower
                .map_or_else(|| "null".to_owned(), |p| format!("{p:.6}")),
        );
        let (verdict, cause) = match &row.verdict {
            compare::Verdict::Regression => ("regression", None),
            compare::Verdict::Consequence(cause) => ("consequence", Some(cause)),
            compare::Verdict::Improvement => ("faster", None),
            compare::Verdict::Same => ("same", None),
            compare::Verdict::NotJudged => ("not judged", None),
        };
        let _ = write!(out, "\"{verdict}\",\"cause\":");
        match cause {
            Some((kind, name)) => json_string(out, &format!("{} {name}", kind.label())),
            None => out.push_str("null"),
        }
        out.push('}');
    }
    out.push(']');
}

/// The page for `traces` and the summary `rows`, and the comparison if
/// there is one. `left_out` spans of the input are not in the page (past
/// its budget).
pub(crate) fn page(
    traces: &[Trace],
    rows: &[SummaryRow],
    malformed: u64,
    left_out: u64,
    compared: Option<&[compare::Row]>,
    edges: &[map::Edge],
) -> String {
    let mut data = String::with_capacity(1 << 20);
    data.push_str("{\"traces\":[");
    for (index, trace) in traces.iter().enumerate() {
        if index > 0 {
            data.push(',');
        }
        let layout = trace.layout();
        let root = layout.rows.first().map(|row| row.span);
        let _ = write!(
            data,
            "{{\"id\":\"{}\",\"start\":{},\"duration\":{},\"name\":",
            trace.id(),
            layout.start,
            layout.end - layout.start
        );
        json_string(&mut data, root.map_or("", |span| span.name.as_str()));
        let _ = write!(
            data,
            ",\"failed\":{},\"failedSpans\":{},\"services\":[",
            trace.root_failed(&layout),
            trace.failed_spans()
        );
        for (number, service) in trace.services().iter().enumerate() {
            if number > 0 {
                data.push(',');
            }
            json_string(&mut data, service);
        }
        data.push_str("],\"spans\":[");
        let row_of: std::collections::HashMap<_, _> = layout
            .rows
            .iter()
            .enumerate()
            .map(|(row, entry)| ((entry.span.trace, entry.span.id), row))
            .collect();
        for (row, entry) in layout.rows.iter().enumerate() {
            let span = entry.span;
            if row > 0 {
                data.push(',');
            }
            data.push_str("{\"name\":");
            json_string(&mut data, &span.name);
            data.push_str(",\"args\":");
            json_string(&mut data, &span.args);
            data.push_str(",\"service\":");
            json_string(&mut data, &span.service);
            let _ = write!(data, ",\"spanKind\":\"{}\"", span.span_kind);
            let _ = write!(
                data,
                ",\"kind\":\"{}\",\"id\":\"{}\",\"offset\":{},\"duration\":{},\"depth\":{},\"parent\":{},\"critical\":{},\"remoteParent\":{},\"error\":",
                span.kind.label(),
                span.id,
                span.start - layout.start,
                span.duration(),
                entry.depth,
                entry.parent.map_or(-1, |parent| parent as i64),
                entry.critical,
                span.parent_is_remote,
            );
            match &span.error {
                Some(error) => json_string(&mut data, error),
                None => data.push_str("null"),
            }
            data.push_str(",\"attributes\":");
            pairs(&mut data, &span.attributes);
            data.push_str(",\"events\":[");
            for (number, (name, at, attributes)) in span.events.iter().enumerate() {
                if number > 0 {
                    data.push(',');
                }
                data.push('[');
                json_string(&mut data, name);
                let _ = write!(data, ",{},", at.saturating_sub(layout.start));
                pairs(&mut data, attributes);
                data.push(']');
            }
            data.push_str("],\"links\":[");
            for (number, (trace_id, span_id)) in span.links.iter().enumerate() {
                if number > 0 {
                    data.push(',');
                }
                let target = row_of
                    .get(&(*trace_id, *span_id))
                    .map_or(-1, |row| *row as i64);
                let _ = write!(data, "[\"{trace_id}\",\"{span_id}\",{target}]");
            }
            data.push_str("]}");
        }
        data.push_str("]}");
    }
    data.push_str("],\"summary\":[");
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            data.push(',');
        }
        let _ = write!(data, "{{\"kind\":\"{}\",\"service\":", row.kind.label());
        json_string(&mut data, &row.service);
        data.push_str(",\"name\":");
        json_string(&mut data, &row.name);
        let _ = write!(
            data,
            ",\"count\":{},\"errors\":{},\"p50\":\"{}\",\"p95\":\"{}\",\"max\":\"{}\",\"tokens\":{},\"cost\":{}}}",
            row.count,
            row.errors,
            human(row.p50),
            human(row.p95),
            human(row.max),
            row.tokens,
            if row.cost.is_finite() { row.cost } else { 0.0 }
        );
    }
    let _ = write!(
        data,
        "],\"malformed\":{malformed},\"leftOut\":{left_out},\"compare\":"
    );
    match compared {
        Some(rows) => comparison(&mut data, rows),
        None => data.push_str("null"),
    }
    data.push_str(",\"map\":[");
    for (index, edge) in edges.iter().enumerate() {
        if index > 0 {
            data.push(',');
        }
        let graph = match edge.graph {
            map::Graph::Services => "services",
            map::Graph::Workflows => "workflows",
        };
        let _ = write!(data, "{{\"graph\":\"{graph}\",\"from\":[");
        json_string(&mut data, &edge.from.0);
        data.push(',');
        json_string(&mut data, &edge.from.1);
        data.push_str("],\"to\":[");
        json_string(&mut data, &edge.to.0);
        data.push(',');
        json_string(&mut data, &edge.to.1);
        let _ = write!(
            data,
            "],\"calls\":{},\"errors\":{},\"p95\":\"{}\"}}",
            edge.calls,
            edge.errors,
            human(edge.p95)
        );
    }
    data.push_str("]}");
    TEMPLATE.replace("/*DATA*/", &data)
}
