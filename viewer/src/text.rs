//! The terminal views: each trace as a tree with its critical path marked,
//! and the summary table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use workflow_otel::terminal_safe;

use crate::model::{Kind, Span, Trace, human};

/// Deepest level a tree shows; deeper spans are summed up in one line.
pub(crate) const MAX_DEPTH: usize = 64;

/// One trace as text: a header, then one line per span, `*` in the first
/// column for the spans on the critical path.
pub(crate) fn tree(trace: &Trace) -> String {
    let layout = trace.layout();
    let mut out = String::new();
    let failed = trace.failed_spans();
    let services = trace.services();
    let _ = write!(
        out,
        "trace {} · {} spans · {} · * critical path",
        trace.id(),
        trace.spans.len(),
        human(layout.end - layout.start)
    );
    if failed > 0 {
        let _ = write!(out, " · {failed} failed");
    }
    if services.len() > 1 {
        let names: Vec<String> = services
            .iter()
            .map(|name| terminal_safe(name).into_owned())
            .collect();
        let _ = write!(out, " · services {}", names.join(", "));
    }
    out.push('\n');
    // The branch prefix each row's children continue with.
    let mut child_prefix: Vec<String> = Vec::with_capacity(layout.rows.len());
    let mut hidden = 0;
    for row in &layout.rows {
        if row.depth > MAX_DEPTH {
            hidden += 1;
            child_prefix.push(String::new());
            continue;
        }
        let inherited = row
            .parent
            .and_then(|parent| child_prefix.get(parent))
            .cloned()
            .unwrap_or_default();
        let branch = match (row.depth, row.last) {
            (0, _) => "",
            (_, true) => "└── ",
            (_, false) => "├── ",
        };
        let mark = if row.critical { "* " } else { "  " };
        let span = row.span;
        let _ = write!(
            out,
            "{mark}{inherited}{branch}{} {}{} [{}]",
            span.kind.label(),
            terminal_safe(&span.name),
            terminal_safe(&span.args),
            human(span.duration())
        );
        match &span.error {
            Some(error) => {
                let _ = write!(out, " ✗ {}", terminal_safe(first_line(error)));
            }
            None => out.push_str(" ✓"),
        }
        if !span.span_kind.is_empty() {
            let _ = write!(out, " · {}", span.span_kind);
        }
        // The service, where the trace spans several and it changes.
        let parent_service = row.parent.map(|parent| &layout.rows[parent].span.service);
        if services.len() > 1 && parent_service != Some(&span.service) {
            let _ = write!(out, " · service {}", terminal_safe(&span.service));
        }
        out.push('\n');
        let continued = match (row.depth, row.last) {
            (0, _) => String::new(),
            (_, true) => format!("{inherited}    "),
            (_, false) => format!("{inherited}│   "),
        };
        child_prefix.push(continued);
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  … {hidden} more spans deeper than {MAX_DEPTH} levels not shown"
        );
    }
    out
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Count, failures, durations, tokens and cost of one workflow or step name.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) durations: Vec<u64>,
    pub(crate) tokens: u64,
    pub(crate) cost: f64,
}

/// Statistics per (service, kind, name), added to one span at a time:
/// nothing else is kept, so any input size can be summarised. The service
/// is part of the key only `by_service`.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) by_service: bool,
    pub(crate) rows: BTreeMap<(String, Kind, String), Stats>,
}

impl Summary {
    pub(crate) fn by_service() -> Summary {
        Summary {
            by_service: true,
            ..Summary::default()
        }
    }

    pub(crate) fn add(&mut self, span: &Span) {
        let service = if self.by_service {
            span.service.to_string()
        } else {
            String::new()
        };
        let stats = self
            .rows
            .entry((service, span.kind, span.name.clone()))
            .or_default();
        stats.count += 1;
        stats.errors += u64::from(span.error.is_some());
        stats.durations.push(span.duration());
        stats.tokens += span.tokens.unwrap_or(0);
        stats.cost += span.cost.unwrap_or(0.0);
    }

    /// The rows, workflows first, each with its percentiles computed.
    pub(crate) fn table(&mut self) -> Vec<SummaryRow> {
        self.rows
            .iter_mut()
            .map(|((service, kind, name), stats)| {
                stats.durations.sort_unstable();
                SummaryRow {
                    service: service.clone(),
                    kind: *kind,
                    name: name.clone(),
                    count: stats.count,
                    errors: stats.errors,
                    p50: percentile(&stats.durations, 50),
                    p95: percentile(&stats.durations, 95),
                    max: stats.durations.last().copied().unwrap_or(0),
                    tokens: stats.tokens,
                    cost: stats.cost,
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SummaryRow {
    /// Empty unless the summary is by service.
    pub(crate) service: String,
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) p50: u64,
    pub(crate) p95: u64,
    pub(crate) max: u64,
    pub(crate) tokens: u64,
    pub(crate) cost: f64,
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[u64], percent: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// A cost to 4 significant digits (0.0003894, 12.35), never rounded to 0;
/// nothing for no cost.
pub(crate) fn cost_text(cost: f64) -> String {
    if cost <= 0.0 || !cost.is_finite() {
        return String::new();
    }
    let digits = (3 - cost.log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{cost:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The summary as an aligned table; token and cost columns only when some
/// span carried them, and blank on rows without; a service column when it
/// is by service.
pub(crate) fn summary(rows: &[SummaryRow]) -> String {
    let with_usage = rows.iter().any(|row| row.tokens > 0 || row.cost > 0.0);
    let by_service = rows.iter().any(|row| !row.service.is_empty());
    let mut head: Vec<String> = Vec::new();
    if by_service {
        head.push("service".to_owned());
    }
    head.extend(
        [
            "kind",
            "name",
            "count",
            "errors",
            "error rate",
            "p50",
            "p95",
            "max",
        ]
        .map(str::to_owned),
    );
    let mut table: Vec<Vec<String>> = vec![head];
    if with_usage {
        table[0].extend(["tokens".to_owned(), "cost".to_owned()]);
    }
    let names = if by_service { 3 } else { 2 };
    for row in rows {
        let mut cells = Vec::new();
        if by_service {
            cells.push(terminal_safe(&row.service).into_owned());
        }
        cells.extend([
            row.kind.label().to_owned(),
            terminal_safe(&row.name).into_owned(),
            row.count.to_string(),
            row.errors.to_string(),
            format!(
                "{:.1}%",
                100.0 * row.errors as f64 / row.count.max(1) as f64
            ),
            human(row.p50),
            human(row.p95),
            human(row.max),
        ]);
        if with_usage {
            cells.push(if row.tokens > 0 {
                row.tokens.to_string()
            } else {
                String::new()
            });
            cells.push(cost_text(row.cost));
        }
        table.push(cells);
    }
    aligned(&table, |column, _| column < names)
}

/// `table` as aligned text, two spaces between columns: `left(column,
/// columns)` says which columns are left-aligned (names), the others are
/// right-aligned (numbers).
pub(crate) fn aligned(table: &[Vec<String>], left: impl Fn(usize, usize) -> bool) -> String {
    let columns = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            table
                .iter()
                .map(|cells| cells[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for cells in table {
        let mut line = String::new();
        for (column, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[column] - cell.chars().count());
            if left(column, columns) {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_keep_four_significant_digits_and_none_is_blank() {
        assert_eq!(cost_text(0.000_389_4), "0.0003894");
        assert_eq!(cost_text(0.000_389_44), "0.0003894");
        assert_eq!(cost_text(12.345_6), "12.35");
        assert_eq!(cost_text(1_234.6), "1235");
        assert_eq!(cost_text(0.5), "0.5");
        assert_eq!(cost_text(0.0), "");
        assert_eq!(cost_text(f64::NAN), "");
    }

    #[test]
    fn rows_without_usage_leave_its_cells_blank() {
        let row = |name: &str, tokens: u64, cost: f64| SummaryRow {
            service: String::new(),
            kind: Kind::Step,
            name: name.to_owned(),
            count: 1,
            errors: 0,
            p50: 1_000,
            p95: 1_000,
            max: 1_000,
            tokens,
            cost,
        };
        let text = summary(&[row("ask", 1_200, 0.000_389_4), row("parse", 0, 0.0)]);
        let lines: Vec<&str> = text.lines().collect();
        let last_two = |line: &str| -> Vec<String> {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields[fields.len() - 2..]
                .iter()
                .map(|field| (*field).to_owned())
                .collect()
        };
        assert_eq!(last_two(lines[0]), ["tokens", "cost"], "{text}");
        assert_eq!(last_two(lines[1]), ["1200", "0.0003894"], "{text}");
        // No zeros: the row ends at its last duration.
        assert_eq!(last_two(lines[2]), ["1µs", "1µs"], "{text}");
    }
}
