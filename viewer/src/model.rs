//! Spans as the viewer keeps them (what it shows, nothing else), grouped
//! into traces, with each trace's tree and critical path.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;
use workflow_otel::attributes as attr;

/// What a span is, from the attributes the macros write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Workflow,
    Step,
    /// A model call (the GenAI conventions' `gen_ai.operation.name`).
    Model,
    Other,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Workflow => "workflow",
            Kind::Step => "step",
            Kind::Model => "model",
            Kind::Other => "span",
        }
    }
}

/// The OpenTelemetry span kind, where it is not INTERNAL.
fn span_kind(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Internal => "",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// An event: its name, nanoseconds since the epoch, its attributes.
pub(crate) type SpanEvent = (String, u64, Vec<(String, String)>);

/// One span, reduced to what the views show.
#[derive(Clone, Debug)]
pub(crate) struct Span {
    pub(crate) trace: TraceId,
    pub(crate) id: SpanId,
    pub(crate) parent: SpanId,
    pub(crate) parent_is_remote: bool,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// `server`, `client`, `producer`, `consumer`; empty for INTERNAL.
    pub(crate) span_kind: &'static str,
    /// The resource's `service.name` (empty if the file had none).
    pub(crate) service: Rc<str>,
    /// The recorded arguments as the console shows them:
    /// `(warehouse="north")`, or empty.
    pub(crate) args: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// The error description, for a span that failed.
    pub(crate) error: Option<String>,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) events: Vec<SpanEvent>,
    pub(crate) links: Vec<(TraceId, SpanId)>,
    /// Tokens (input + output) and cost, when the span carries them.
    pub(crate) tokens: Option<u64>,
    pub(crate) cost: Option<f64>,
}

fn nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.as_str().to_owned(),
        other => other.to_string(),
    }
}

fn number(attributes: &[opentelemetry::KeyValue], key: &str) -> Option<f64> {
    attributes
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match &kv.value {
            Value::I64(value) => Some(*value as f64),
            Value::F64(value) => Some(*value),
            Value::String(text) => text.as_str().parse().ok(),
            _ => None,
        })
}

/// A recorded argument's value as the console shows it: text quoted.
fn literal(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{:?}", text.as_str()),
        other => other.to_string(),
    }
}

impl Span {
    /// `service` is the name of the resource the span was exported under.
    pub(crate) fn from_data(span: &SpanData, service: Rc<str>) -> Span {
        let has = |key: &str| span.attributes.iter().any(|kv| kv.key.as_str() == key);
        let kind = if has(attr::RELATIONSHIP_TYPE) {
            Kind::Workflow
        } else if has(attr::STEP_NAME) {
            Kind::Step
        } else if has(attr::GEN_AI_OPERATION_NAME) {
            Kind::Model
        } else {
            Kind::Other
        };
        let args: Vec<String> = span
            .attributes
            .iter()
            .filter_map(|kv| {
                let name = kv.key.as_str().strip_prefix("arg.")?;
                Some(format!("{name}={}", literal(&kv.value)))
            })
            .collect();
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let error = match &span.status {
            Status::Error { description } => Some(description.to_string()),
            _ => None,
        };
        // A workflow's roll-up counts its model calls; a model call counts
        // itself: never both for one span.
        let (input, output, cost) = if kind == Kind::Workflow {
            (
                attr::WORKFLOW_GEN_AI_INPUT_TOKENS,
                attr::WORKFLOW_GEN_AI_OUTPUT_TOKENS,
                attr::WORKFLOW_GEN_AI_COST,
            )
        } else {
            (
                attr::GEN_AI_USAGE_INPUT_TOKENS,
                attr::GEN_AI_USAGE_OUTPUT_TOKENS,
                attr::GEN_AI_USAGE_COST,
            )
        };
        let input = number(&span.attributes, input);
        let output = number(&span.attributes, output);
        let tokens = match (input, output) {
            (None, None) => None,
            (input, output) => Some((input.unwrap_or(0.0) + output.unwrap_or(0.0)) as u64),
        };
        Span {
            trace: span.span_context.trace_id(),
            id: span.span_context.span_id(),
            parent: span.parent_span_id,
            parent_is_remote: span.parent_span_is_remote,
            name: span.name.to_string(),
            kind,
            span_kind: span_kind(&span.span_kind),
            service,
            args,
            start: nanos(span.start_time),
            end: nanos(span.end_time).max(nanos(span.start_time)),
            error,
            attributes: span
                .attributes
                .iter()
                .map(|kv| (kv.key.as_str().to_owned(), text(&kv.value)))
                .collect(),
            events: span
                .events
                .iter()
                .map(|event| {
                    (
                        event.name.to_string(),
                        nanos(event.timestamp),
                        event
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.as_str().to_owned(), text(&kv.value)))
                            .collect(),
                    )
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| (link.span_context.trace_id(), link.span_context.span_id()))
                .collect(),
            tokens,
            cost: number(&span.attributes, cost),
        }
    }

    pub(crate) fn duration(&self) -> u64 {
        self.end - self.start
    }
}

/// One trace's spans, as a tree.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    pub(crate) spans: Vec<Span>,
}

/// A trace laid out: spans in tree order (parents before children, siblings
/// by start), each with its depth, its parent's position, and whether it is
/// on the critical path.
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    pub(crate) rows: Vec<Row<'a>>,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

#[derive(Debug)]
pub(crate) struct Row<'a> {
    pub(crate) span: &'a Span,
    pub(crate) depth: usize,
    pub(crate) parent: Option<usize>,
    pub(crate) critical: bool,
    /// Whether it is the last of its siblings (for the text tree's branches).
    pub(crate) last: bool,
}

impl Trace {
    pub(crate) fn id(&self) -> TraceId {
        self.spans
            .first()
            .map_or(TraceId::INVALID, |span| span.trace)
    }

    /// How many of its spans failed.
    pub(crate) fn failed_spans(&self) -> usize {
        self.spans
            .iter()
            .filter(|span| span.error.is_some())
            .count()
    }

    /// The services the trace's spans came from, in order of first start.
    pub(crate) fn services(&self) -> Vec<Rc<str>> {
        let mut by_start: Vec<&Span> = self.spans.iter().collect();
        by_start.sort_by_key(|span| span.start);
        let mut services: Vec<Rc<str>> = Vec::new();
        for span in by_start {
            if !services.contains(&span.service) {
                services.push(span.service.clone());
            }
        }
        services
    }

    /// Whether the root (the first span in tree order) failed: a workflow
    /// whose retried step failed once may still have succeeded.
    pub(crate) fn root_failed(&self, layout: &Layout<'_>) -> bool {
        layout
            .rows
            .first()
            .is_some_and(|row| row.span.error.is_some())
    }

    pub(crate) fn layout(&self) -> Layout<'_> {
        let index: HashMap<SpanId, usize> = self
            .spans
            .iter()
            .enumerate()
            .map(|(position, span)| (span.id, position))
            .collect();
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for (position, span) in self.spans.iter().enumerate() {
            match index.get(&span.parent) {
                Some(parent) if span.parent != SpanId::INVALID && *parent != position => {
                    children.entry(*parent).or_default().push(position)
                }
                _ => roots.push(position),
            }
        }
        let by_start = |list: &mut Vec<usize>| {
            list.sort_by_key(|position| {
                (
                    self.spans[*position].start,
                    self.spans[*position].name.clone(),
                )
            })
        };
        by_start(&mut roots);
        for list in children.values_mut() {
            by_start(list);
        }
        // The critical path: from each root, the child that ends last, down.
        let mut critical = vec![false; self.spans.len()];
        for root in &roots {
            let mut at = *root;
            loop {
                critical[at] = true;
                let Some(next) = children.get(&at).and_then(|list| {
                    list.iter()
                        .max_by_key(|position| self.spans[**position].end)
                }) else {
                    break;
                };
                at = *next;
            }
        }
        // Iterative depth-first walk: a trace may be as deep as a recursion.
        let mut rows = Vec::with_capacity(self.spans.len());
        let mut seen = vec![false; self.spans.len()];
        let mut stack: Vec<(usize, usize, Option<usize>, bool)> = roots
            .iter()
            .rev()
            .enumerate()
            .map(|(from_end, root)| (*root, 0, None, from_end == 0))
            .collect();
        // Spans caught in a parent cycle (only corrupt input has one) are
        // still shown, as roots.
        let mut next_unseen = 0;
        loop {
            let Some((position, depth, parent, last)) = stack.pop() else {
                while next_unseen < self.spans.len() && seen[next_unseen] {
                    next_unseen += 1;
                }
                if next_unseen < self.spans.len() {
                    stack.push((next_unseen, 0, None, true));
                    continue;
                }
                break;
            };
            if seen[position] {
                continue;
            }
            seen[position] = true;
            let row = rows.len();
            rows.push(Row {
                span: &self.spans[position],
                depth,
                parent,
                critical: critical[position],
                last,
            });
            if let Some(list) = children.get(&position) {
                for (from_end, child) in list.iter().rev().enumerate() {
                    stack.push((*child, depth + 1, Some(row), from_end == 0));
                }
            }
        }
        let start = self.spans.iter().map(|span| span.start).min().unwrap_or(0);
        let end = self
            .spans
            .iter()
            .map(|span| span.end)
            .max()
            .unwrap_or(start);
        Layout { rows, start, end }
    }
}

/// `1.2s`, `14.0ms`, `72µs`, `950ns`.
pub(crate) fn human(nanos: u64) -> String {
    if nanos >= 1_000_000_000 {
        format!("{:.2}s", nanos as f64 / 1e9)
    } else if nanos >= 1_000_000 {
        format!("{:.1}ms", nanos as f64 / 1e6)
    } else if nanos >= 1_000 {
        format!("{}µs", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}
