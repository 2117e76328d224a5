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
    let _ = writeln!(
        out,
        "trace {} · {} spans · {} · * critical path",
        trace.id(),
        trace.spans.len(),
        human(layout.end - layout.start)
    );
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
            "{mark}{inherited}{branch}{} {} [{}]",
            span.kind.label(),
            terminal_safe(&span.name),
            human(span.duration())
        );
        match &span.error {
            Some(error) => {
                let _ = writeln!(out, " ✗ {}", terminal_safe(first_line(error)));
            }
            None => out.push_str(" ✓\n"),
        }
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

/// Statistics per (kind, name), added to one span at a time: nothing else is
/// kept, so any input size can be summarised.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) rows: BTreeMap<(Kind, String), Stats>,
}

impl Summary {
    pub(crate) fn add(&mut self, span: &Span) {
        let stats = self.rows.entry((span.kind, span.name.clone())).or_default();
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
            .map(|((kind, name), stats)| {
                stats.durations.sort_unstable();
                SummaryRow {
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
fn percentile(sorted: &[u64], percent: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The summary as an aligned table; token and cost columns only when some
/// span carried them.
pub(crate) fn summary(rows: &[SummaryRow]) -> String {
    let with_usage = rows.iter().any(|row| row.tokens > 0 || row.cost > 0.0);
    let mut table: Vec<Vec<String>> = vec![
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
        .map(str::to_owned)
        .to_vec(),
    ];
    if with_usage {
        table[0].extend(["tokens".to_owned(), "cost".to_owned()]);
    }
    for row in rows {
        let mut cells = vec![
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
        ];
        if with_usage {
            cells.push(row.tokens.to_string());
            cells.push(format!("{:.4}", row.cost));
        }
        table.push(cells);
    }
    let columns = table[0].len();
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
    for cells in &table {
        let mut line = String::new();
        for (column, cell) in cells.iter().enumerate() {
            let pad = widths[column] - cell.chars().count();
            // Names left, numbers right.
            if column < 2 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
