//! The HTML view: one self-contained file (styles, script and data inline,
//! nothing fetched), working from `file://`. The data is JSON in a script
//! element; the page's script lays out the selected trace's waterfall.

use std::fmt::Write as _;

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

/// The page for `traces` and the summary `rows`.
/// `left_out` spans of the input are not in the page (past its budget).
pub(crate) fn page(traces: &[Trace], rows: &[SummaryRow], malformed: u64, left_out: u64) -> String {
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
        let failed = trace.spans.iter().any(|span| span.error.is_some());
        let _ = write!(data, ",\"failed\":{failed},\"spans\":[");
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
        let _ = write!(data, "{{\"kind\":\"{}\",\"name\":", row.kind.label());
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
    let _ = write!(data, "],\"malformed\":{malformed},\"leftOut\":{left_out}}}");
    TEMPLATE.replace("/*DATA*/", &data)
}
