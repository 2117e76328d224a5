//! `--map`: the service map, from the spans alone. Two graphs: services
//! (an edge where a span's parent, or a span it links to, is in another
//! process: a remote parent), and workflows (a child workflow's edge from
//! the workflow that started it, in its process or another). Each edge
//! counts the calls, the failed ones, and the p95 of the callee's duration.
//!
//! Streaming, in bounded memory: what is kept is the edges (each with a
//! histogram of at most 2,048 buckets) and a window of the last
//! [`WINDOW`] spans, where a remote parent is looked up (spans end, and are
//! exported, before their parents; the files are read interleaved, one line
//! of each in turn). A call whose parent is not found within the window is
//! counted under the service `(not in these files)`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use opentelemetry::trace::SpanId;
use workflow_otel::attributes as attr;
use workflow_otel::terminal_safe;

use crate::model::{Kind, Span, human};
use crate::text::aligned;

/// Spans kept to find remote parents in; calls waiting for their parent.
pub(crate) const WINDOW: usize = 200_000;
/// Most distinct edges kept; past it, new edges are counted and left out.
pub(crate) const MAX_EDGES: usize = 10_000;
/// Where a caller not found in the files is drawn from.
pub(crate) const OUTSIDE: &str = "(not in these files)";

/// A log-linear histogram of durations: 32 buckets per power of two, so a
/// quantile is within about 3% of the true one.
#[derive(Debug, Default)]
struct Histogram {
    buckets: BTreeMap<u16, u64>,
    count: u64,
}

impl Histogram {
    fn bucket(value: u64) -> u16 {
        if value < 32 {
            return value as u16;
        }
        let bits = 64 - value.leading_zeros();
        let mantissa = (value >> (bits - 6)) & 31;
        ((bits - 5) * 32 + mantissa as u32) as u16
    }

    /// The middle of a bucket.
    fn value(bucket: u16) -> u64 {
        if bucket < 32 {
            return u64::from(bucket);
        }
        let bits = u32::from(bucket / 32) + 5;
        let mantissa = u64::from(bucket % 32) | 32;
        let low = mantissa << (bits - 6);
        low + (1_u64 << (bits - 6)) / 2
    }

    fn add(&mut self, value: u64) {
        *self.buckets.entry(Self::bucket(value)).or_default() += 1;
        self.count += 1;
    }

    fn quantile(&self, percent: u64) -> u64 {
        let rank = (percent * self.count).div_ceil(100).max(1);
        let mut seen = 0;
        for (bucket, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Self::value(*bucket);
            }
        }
        0
    }
}

/// Which graph an edge is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Graph {
    Services,
    Workflows,
}

/// One end of a workflow edge: a service and a workflow.
pub(crate) type Node = (Rc<str>, Rc<str>);

#[derive(Debug, Default)]
struct Stats {
    calls: u64,
    errors: u64,
    durations: Histogram,
}

/// A call waiting for its caller to arrive.
struct Waiting {
    service: Rc<str>,
    /// For a child workflow: its name and its parent workflow's.
    workflows: Option<(Rc<str>, Rc<str>)>,
    duration: u64,
    failed: bool,
    /// Found through a link, not the parent: an edge only across services.
    link: bool,
}

/// The map being built.
#[derive(Default)]
pub(crate) struct Map {
    edges: BTreeMap<(Graph, Node, Node), Stats>,
    recent: HashMap<SpanId, Rc<str>>,
    recent_order: VecDeque<SpanId>,
    waiting: HashMap<SpanId, Vec<Waiting>>,
    waiting_order: VecDeque<SpanId>,
    pub(crate) edges_left_out: u64,
}

/// One edge of the map.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Edge {
    pub(crate) graph: Graph,
    pub(crate) from: Node,
    pub(crate) to: Node,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) p95: u64,
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

impl Map {
    pub(crate) fn add(&mut self, span: &Span) {
        let service = span.service.clone();
        // A child workflow names the workflow that started it.
        let workflows = (span.kind == Kind::Workflow
            && attribute(span, attr::RELATIONSHIP_TYPE) == Some(attr::CHILD_WORKFLOW))
        .then(|| attribute(span, attr::PARENT_WORKFLOW_NAME))
        .flatten()
        .map(|parent| (Rc::<str>::from(span.name.as_str()), Rc::<str>::from(parent)));
        let call = Waiting {
            service: service.clone(),
            workflows,
            duration: span.duration(),
            failed: span.error.is_some(),
            link: false,
        };
        // Calls that came before their caller: this span.
        if let Some(calls) = self.waiting.remove(&span.id) {
            for waiting in calls {
                self.resolve(&service, waiting, true);
            }
        }
        let remote = span.parent_is_remote && span.parent != SpanId::INVALID;
        if remote {
            match self.recent.get(&span.parent).cloned() {
                Some(caller) => self.resolve(&caller, call, true),
                None => self.wait(span.parent, call),
            }
        } else if call.workflows.is_some() {
            // A child workflow in the same process.
            self.resolve(&service, call, false);
        }
        for (_, linked) in &span.links {
            if !remote {
                let call = Waiting {
                    service: service.clone(),
                    workflows: None,
                    duration: span.duration(),
                    failed: span.error.is_some(),
                    link: true,
                };
                match self.recent.get(linked).cloned() {
                    Some(caller) => self.resolve(&caller, call, true),
                    None => self.wait(*linked, call),
                }
            }
        }
        self.remember(span.id, service);
    }

    fn remember(&mut self, id: SpanId, service: Rc<str>) {
        if self.recent.insert(id, service).is_none() {
            self.recent_order.push_back(id);
        }
        while self.recent_order.len() > WINDOW {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    fn wait(&mut self, parent: SpanId, call: Waiting) {
        self.waiting.entry(parent).or_default().push(call);
        self.waiting_order.push_back(parent);
        while self.waiting_order.len() > WINDOW {
            // The oldest call waited too long: its caller is outside.
            if let Some(old) = self.waiting_order.pop_front()
                && let Some(calls) = self.waiting.remove(&old)
            {
                for call in calls {
                    self.resolve(&Rc::from(OUTSIDE), call, true);
                }
            }
        }
    }

    /// Adds a call from `caller`'s service; `across` for a call from
    /// another process (a service edge).
    fn resolve(&mut self, caller: &Rc<str>, call: Waiting, across: bool) {
        // A link within one service (a child workflow's to its parent, say)
        // is no call between services.
        if call.link && *caller == call.service {
            return;
        }
        let empty: Rc<str> = Rc::from("");
        if across {
            self.count(
                (
                    Graph::Services,
                    (caller.clone(), empty.clone()),
                    (call.service.clone(), empty),
                ),
                &call,
            );
        }
        if let Some((child, parent)) = &call.workflows {
            self.count(
                (
                    Graph::Workflows,
                    (caller.clone(), parent.clone()),
                    (call.service.clone(), child.clone()),
                ),
                &call,
            );
        }
    }

    fn count(&mut self, key: (Graph, Node, Node), call: &Waiting) {
        if !self.edges.contains_key(&key) && self.edges.len() >= MAX_EDGES {
            self.edges_left_out += 1;
            return;
        }
        let stats = self.edges.entry(key).or_default();
        stats.calls += 1;
        stats.errors += u64::from(call.failed);
        stats.durations.add(call.duration);
    }

    /// The edges, once every file is read: calls still waiting for their
    /// caller come from outside these files.
    pub(crate) fn edges(mut self) -> Vec<Edge> {
        let outside: Rc<str> = Rc::from(OUTSIDE);
        for (_, calls) in std::mem::take(&mut self.waiting) {
            for call in calls {
                self.resolve(&outside, call, true);
            }
        }
        self.edges
            .iter()
            .map(|((graph, from, to), stats)| Edge {
                graph: *graph,
                from: from.clone(),
                to: to.clone(),
                calls: stats.calls,
                errors: stats.errors,
                p95: stats.durations.quantile(95),
            })
            .collect()
    }
}

fn node_text(graph: Graph, (service, workflow): &Node) -> String {
    match graph {
        Graph::Services => terminal_safe(service).into_owned(),
        Graph::Workflows => format!("{}/{}", terminal_safe(service), terminal_safe(workflow)),
    }
}

/// The map as an aligned edge list: services first, then workflows.
pub(crate) fn table(edges: &[Edge]) -> String {
    let mut table: Vec<Vec<String>> = vec![
        [
            "graph",
            "from",
            "to",
            "calls",
            "errors",
            "error rate",
            "p95",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for edge in edges {
        table.push(vec![
            match edge.graph {
                Graph::Services => "service".to_owned(),
                Graph::Workflows => "workflow".to_owned(),
            },
            node_text(edge.graph, &edge.from),
            node_text(edge.graph, &edge.to),
            edge.calls.to_string(),
            edge.errors.to_string(),
            format!(
                "{:.1}%",
                100.0 * edge.errors as f64 / edge.calls.max(1) as f64
            ),
            human(edge.p95),
        ]);
    }
    aligned(&table, |column, _| column < 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_keeps_quantiles_within_three_percent() {
        let mut histogram = Histogram::default();
        for value in 1..=100_000_u64 {
            histogram.add(value * 1_000);
        }
        let p95 = histogram.quantile(95) as f64;
        assert!((p95 / 95_000_000.0 - 1.0).abs() < 0.03, "{p95}");
        for value in [0, 1, 31, 32, 33, 1_000, 123_456_789, u64::MAX / 2] {
            let middle = Histogram::value(Histogram::bucket(value)) as f64;
            assert!(
                value < 32 && middle == value as f64 || (middle / value as f64 - 1.0).abs() < 0.03,
                "{value}: {middle}"
            );
        }
    }
}
