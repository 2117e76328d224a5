//! Finished spans arranged as trees by their parent span ids, with two
//! renderings: a normalised one for assertions, and the console one for people.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::view::terminal::terminal_safe;
use std::time::Duration;

use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::record::attributes as attr;

/// Finished spans arranged by parent span id. A span whose parent is not among
/// the spans given (or that has none) is a root.
#[derive(Clone, Debug, Default)]
pub struct SpanTree {
    roots: Vec<SpanNode>,
}

/// One span and the spans whose parent it is, in start order.
#[derive(Clone, Debug)]
pub struct SpanNode {
    /// The finished span, as exporters receive it.
    pub span: SpanData,
    /// Its children, ordered by start time (then name).
    pub children: Vec<SpanNode>,
}

/// What a span is, read from the attributes the macros write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A span of `#[workflow]` or `#[child_workflow]`.
    Workflow,
    /// A span of `#[step]`.
    Step,
    /// A span some other code opened (OpenTelemetry API, tracing, ...).
    Other,
}

impl SpanNode {
    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        find_attribute(&self.span.attributes, key)
    }

    /// Whether this is a workflow, step or other span.
    pub fn kind(&self) -> NodeKind {
        if self.attribute(attr::RELATIONSHIP_TYPE).is_some() {
            NodeKind::Workflow
        } else if self.attribute(attr::STEP_NAME).is_some() {
            NodeKind::Step
        } else {
            NodeKind::Other
        }
    }

    /// This span and every span below it, parents before children, without
    /// recursion: a tree may be as deep as a program's recursion.
    fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a SpanNode, usize)) {
        let mut stack = vec![(self, 0)];
        while let Some((node, depth)) = stack.pop() {
            visit(node, depth);
            stack.extend(node.children.iter().rev().map(|child| (child, depth + 1)));
        }
    }

    fn duration(&self) -> Duration {
        self.span
            .end_time
            .duration_since(self.span.start_time)
            .unwrap_or_default()
    }
}

fn find_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    // The last write wins, as in every OpenTelemetry backend.
    attributes
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

impl SpanTree {
    /// Arranges `spans` into trees. Spans whose parents form a cycle (which
    /// only a corrupt or hostile input has) become roots, so none is lost.
    pub fn from_spans(spans: impl IntoIterator<Item = SpanData>) -> SpanTree {
        let spans: Vec<SpanData> = spans.into_iter().collect();
        let known: HashSet<(TraceId, SpanId)> = spans
            .iter()
            .map(|span| (span.span_context.trace_id(), span.span_context.span_id()))
            .collect();
        let mut children: HashMap<(TraceId, SpanId), Vec<SpanData>> = HashMap::new();
        let mut roots = Vec::new();
        for span in spans {
            let parent = (span.span_context.trace_id(), span.parent_span_id);
            if span.parent_span_id != SpanId::INVALID && known.contains(&parent) {
                children.entry(parent).or_default().push(span);
            } else {
                roots.push(span);
            }
        }
        let mut nodes: Vec<SpanNode> = roots
            .into_iter()
            .map(|span| build_subtree(span, &mut children))
            .collect();
        // What is left hangs off a cycle: each becomes a root of its own.
        while let Some(key) = children.keys().next().copied() {
            for span in children.remove(&key).unwrap_or_default() {
                nodes.push(build_subtree(span, &mut children));
            }
        }
        sort_by_start(&mut nodes);
        SpanTree { roots: nodes }
    }

    /// The root spans, in start order.
    pub fn roots(&self) -> &[SpanNode] {
        &self.roots
    }

    /// Every span, parents before children.
    pub fn nodes(&self) -> Vec<&SpanNode> {
        let mut nodes = Vec::new();
        for root in &self.roots {
            root.walk(&mut |node, _| nodes.push(node));
        }
        nodes
    }

    /// The first span named `name`, parents before children.
    pub fn find(&self, name: &str) -> Option<&SpanNode> {
        self.nodes().into_iter().find(|node| node.span.name == name)
    }

    /// Renders every span with all attributes except `code.*`, normalised so
    /// that the text is the same on every run; see [`render_with`](Self::render_with).
    pub fn render(&self) -> String {
        self.render_with(|key| !key.starts_with("code."))
    }

    /// Renders every span with the attributes whose key `keep` accepts.
    ///
    /// Each span is a line `name #N [kind] status`, where `#N` numbers the spans
    /// in the order shown; its attributes (sorted by key), events and links
    /// follow on lines starting with `|`, and its children are indented below.
    /// Values that differ on every run are replaced by what they refer to:
    /// span ids by `#N` (`#?` if no captured span has that id), trace ids by
    /// `trace#N`, workflow ids by `wf#N` in order of first appearance, times by
    /// `<time>` and durations by `<duration>`. So the text asserts parent ids,
    /// root span ids and which workflow a step belongs to.
    pub fn render_with(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut normaliser = Normaliser::default();
        for (index, node) in self.nodes().into_iter().enumerate() {
            normaliser
                .span_numbers
                .insert(node.span.span_context.span_id(), index + 1);
        }
        let mut out = String::new();
        for (index, (node, depth)) in self.nodes_with_depth().into_iter().enumerate() {
            render_node(node, depth, index + 1, &keep, &mut normaliser, &mut out);
        }
        out
    }

    fn nodes_with_depth(&self) -> Vec<(&SpanNode, usize)> {
        let mut nodes = Vec::new();
        for root in &self.roots {
            root.walk(&mut |node, depth| nodes.push((node, depth)));
        }
        nodes
    }

    /// The console rendering: one tree per root with durations and status
    /// marks (`✓` success, `✗` error with the first line of its message,
    /// `⊘` cancelled). Nesting deeper than [`MAX_CONSOLE_DEPTH`] levels is
    /// summed up in one line, so any tree prints in bounded width.
    pub fn render_console(&self) -> String {
        let mut out = String::new();
        for root in &self.roots {
            render_console_tree(root, &mut out);
        }
        out
    }
}

impl Drop for SpanTree {
    // Dropping nested `Vec`s recurses once per level: a deep enough tree
    // would overflow the stack of the thread that drops it. Flatten first.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.roots);
        while let Some(mut node) = stack.pop() {
            stack.append(&mut node.children);
        }
    }
}

/// The levels the console tree shows below a root; deeper spans are counted
/// in one line at this depth.
pub const MAX_CONSOLE_DEPTH: usize = 64;

/// Builds the node for `span` and everything below it, children in start
/// order, with an explicit stack instead of recursion.
fn build_subtree(
    span: SpanData,
    children: &mut HashMap<(TraceId, SpanId), Vec<SpanData>>,
) -> SpanNode {
    struct Frame {
        span: SpanData,
        waiting: Vec<SpanData>,
        built: Vec<SpanNode>,
    }
    let key = |span: &SpanData| (span.span_context.trace_id(), span.span_context.span_id());
    let waiting = children.remove(&key(&span)).unwrap_or_default();
    let mut stack = vec![Frame {
        span,
        waiting,
        built: Vec::new(),
    }];
    loop {
        let top = stack.last_mut().expect("the root frame is popped last");
        if let Some(child) = top.waiting.pop() {
            let waiting = children.remove(&key(&child)).unwrap_or_default();
            stack.push(Frame {
                span: child,
                waiting,
                built: Vec::new(),
            });
            continue;
        }
        let frame = stack.pop().expect("checked above");
        let mut nodes = frame.built;
        sort_by_start(&mut nodes);
        let node = SpanNode {
            span: frame.span,
            children: nodes,
        };
        match stack.last_mut() {
            Some(parent) => parent.built.push(node),
            None => return node,
        }
    }
}

fn sort_by_start(nodes: &mut [SpanNode]) {
    nodes.sort_by(|a, b| {
        a.span
            .start_time
            .cmp(&b.span.start_time)
            .then_with(|| a.span.name.cmp(&b.span.name))
    });
}

fn kind_label(node: &SpanNode) -> &'static str {
    match node.kind() {
        NodeKind::Workflow => "workflow",
        NodeKind::Step => "step",
        NodeKind::Other => "span",
    }
}

#[derive(Default)]
struct Normaliser {
    span_numbers: HashMap<SpanId, usize>,
    traces: Vec<String>,
    workflows: Vec<String>,
}

impl Normaliser {
    fn numbered(list: &mut Vec<String>, value: &str) -> usize {
        match list.iter().position(|seen| seen == value) {
            Some(index) => index + 1,
            None => {
                list.push(value.to_owned());
                list.len()
            }
        }
    }

    fn span_ref(&self, span_id: SpanId) -> String {
        match self.span_numbers.get(&span_id) {
            Some(number) => format!("#{number}"),
            None => "#?".to_owned(),
        }
    }

    fn value(&mut self, key: &Key, value: &Value) -> String {
        let key = key.as_str();
        let text = value.as_str();
        if key == attr::TRACE_ID {
            return format!("trace#{}", Self::numbered(&mut self.traces, &text));
        }
        if attr::WORKFLOW_ID_KEYS.contains(&key) {
            return format!("wf#{}", Self::numbered(&mut self.workflows, &text));
        }
        if attr::SPAN_ID_KEYS.contains(&key) {
            return match SpanId::from_hex(&text) {
                Ok(span_id) => self.span_ref(span_id),
                Err(_) => format!("{text:?} (not a span id)"),
            };
        }
        if attr::TIME_KEYS.contains(&key) {
            match value {
                Value::F64(seconds) if seconds.is_finite() && *seconds >= 0.0 => {
                    return "<duration>".to_owned();
                }
                Value::String(time) if looks_like_rfc3339(time.as_str()) => {
                    return "<time>".to_owned();
                }
                _ => {}
            }
        }
        literal(value)
    }
}

fn looks_like_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 27 && bytes[4] == b'-' && bytes[10] == b'T' && bytes[26] == b'Z'
}

fn literal(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{:?}", text.as_str()),
        other => other.to_string(),
    }
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Unset => "Unset".to_owned(),
        Status::Ok => "Ok".to_owned(),
        Status::Error { description } => format!("Error({:?})", description.as_ref()),
    }
}

fn attribute_list(attributes: &[KeyValue], normaliser: &mut Normaliser) -> String {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let parts: Vec<String> = sorted
        .into_iter()
        .map(|kv| format!("{}: {}", kv.key, normaliser.value(&kv.key, &kv.value)))
        .collect();
    parts.join(", ")
}

fn render_node(
    node: &SpanNode,
    depth: usize,
    number: usize,
    keep: &impl Fn(&str) -> bool,
    normaliser: &mut Normaliser,
    out: &mut String,
) {
    let indent = "  ".repeat(depth);
    let scope = match node.kind() {
        NodeKind::Other => format!(
            " scope={}",
            terminal_safe(node.span.instrumentation_scope.name())
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "{indent}{} #{} [{}{scope}] {}",
        terminal_safe(&node.span.name),
        number,
        kind_label(node),
        terminal_safe(&status_text(&node.span.status))
    );
    let mut attributes: Vec<&KeyValue> = node
        .span
        .attributes
        .iter()
        .filter(|kv| keep(kv.key.as_str()))
        .collect();
    attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    for kv in attributes {
        let value = normaliser.value(&kv.key, &kv.value);
        let _ = writeln!(
            out,
            "{indent}  | {}: {}",
            terminal_safe(kv.key.as_str()),
            terminal_safe(&value)
        );
    }
    for event in node.span.events.iter() {
        let _ = writeln!(
            out,
            "{indent}  | event {} {{{}}}",
            terminal_safe(&event.name),
            terminal_safe(&attribute_list(&event.attributes, normaliser))
        );
    }
    for link in node.span.links.iter() {
        let _ = writeln!(
            out,
            "{indent}  | link {} {{{}}}",
            normaliser.span_ref(link.span_context.span_id()),
            terminal_safe(&attribute_list(&link.attributes, normaliser))
        );
    }
}

/// `850µs`, `12.3ms`, `2.50s`.
pub(crate) fn human_duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", duration.as_secs_f64() * 1e3)
    } else {
        format!("{:.2}s", duration.as_secs_f64())
    }
}

/// One tree, preorder with an explicit stack; each entry carries the prefix
/// of its own line and the prefix its children continue.
fn render_console_tree(root: &SpanNode, out: &mut String) {
    let mut stack = vec![(root, String::new(), String::new(), 0usize)];
    while let Some((node, own_prefix, child_prefix, depth)) = stack.pop() {
        console_line(node, &own_prefix, out);
        if node.children.is_empty() {
            continue;
        }
        if depth == MAX_CONSOLE_DEPTH {
            let (spans, failed) = descendants(node);
            let _ = writeln!(
                out,
                "{child_prefix}└── … {spans} more spans deeper than {MAX_CONSOLE_DEPTH} levels \
                 ({failed} failed) not shown"
            );
            continue;
        }
        let count = node.children.len();
        for (index, child) in node.children.iter().enumerate().rev() {
            let (branch, continuation) = if index + 1 == count {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            stack.push((
                child,
                format!("{child_prefix}{branch}"),
                format!("{child_prefix}{continuation}"),
                depth + 1,
            ));
        }
    }
}

/// How many spans are below `node`, and how many of them failed.
fn descendants(node: &SpanNode) -> (usize, usize) {
    let (mut spans, mut failed) = (0, 0);
    node.walk(&mut |below, depth| {
        if depth > 0 {
            spans += 1;
            failed += usize::from(matches!(below.span.status, Status::Error { .. }));
        }
    });
    (spans, failed)
}

fn console_line(node: &SpanNode, prefix: &str, out: &mut String) {
    let cancelled = [attr::STEP_STATUS, attr::WORKFLOW_STATUS]
        .iter()
        .any(|key| {
            node.attribute(key)
                .is_some_and(|value| value.as_str() == attr::STATUS_CANCELLED)
        });
    let mark = match &node.span.status {
        Status::Error { description } => {
            format!("✗ {}", terminal_safe(&first_line(description)))
        }
        _ if cancelled => "⊘ cancelled".to_owned(),
        _ => "✓".to_owned(),
    };
    // Recorded arguments tell sibling calls of the same function apart.
    let args: Vec<String> = node
        .span
        .attributes
        .iter()
        .filter_map(|kv| {
            let name = kv.key.as_str().strip_prefix("arg.")?;
            Some(format!(
                "{}={}",
                terminal_safe(name),
                terminal_safe(&literal(&kv.value))
            ))
        })
        .collect();
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("({})", args.join(", "))
    };
    // A model call (GenAI conventions) reads better as what it is.
    let label = match node.kind() {
        NodeKind::Other if node.attribute(attr::GEN_AI_OPERATION_NAME).is_some() => "model",
        _ => kind_label(node),
    };
    let _ = writeln!(
        out,
        "{prefix}{label} {}{args} [{}] {mark}",
        terminal_safe(&node.span.name),
        human_duration(node.duration()),
    );
}

/// The first line of a message, with a count of the lines left out, so an
/// error chain or a backtrace keeps the tree one line per span.
fn first_line(message: &str) -> String {
    let mut lines = message.trim_end().lines();
    let first = lines.next().unwrap_or_default();
    match lines.count() {
        0 => first.to_owned(),
        1 => format!("{first} (+1 more line)"),
        more => format!("{first} (+{more} more lines)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(human_duration(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(human_duration(Duration::from_millis(2_500)), "2.50s");
    }
}
