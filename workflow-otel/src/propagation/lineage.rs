//! The workflow lineage that crosses a process boundary with the trace: the
//! parent workflow's name, id, depth, path and correlation id, in the
//! `workflow-lineage` header, read within documented limits.

use std::collections::HashMap;

use opentelemetry::trace::SpanId;
use uuid::Uuid;

use super::w3c;
use crate::record::context::{MAX_WORKFLOW_DEPTH, PATH_ELISION, WorkflowContext, bound_path};

/// The workflow a remote child continues.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WorkflowLineage {
    /// The parent workflow's name.
    pub name: String,
    /// The parent workflow's id.
    pub id: String,
    /// The parent workflow's depth.
    pub depth: u32,
    /// The parent workflow's hierarchy path.
    pub hierarchy_path: String,
    /// The correlation id of the whole workflow tree.
    pub correlation_id: String,
    /// The span id (hex) of the root workflow of the tree.
    pub root_span_id: String,
    /// The span id (hex) of the parent workflow's span, the target of the
    /// remote child's span link.
    pub span_id: String,
}

impl WorkflowLineage {
    pub(super) fn of(workflow: &WorkflowContext) -> WorkflowLineage {
        WorkflowLineage {
            name: workflow.name().to_owned(),
            id: workflow.id().to_string(),
            depth: workflow.depth(),
            hierarchy_path: workflow.hierarchy_path().to_owned(),
            correlation_id: workflow.correlation_id().to_owned(),
            root_span_id: workflow.root_span_id().to_string(),
            span_id: workflow.span_context().span_id().to_string(),
        }
    }

    /// The header form: `name=..;id=..;depth=..;path=..;correlation=..;root=..;span=..`,
    /// values percent-encoded.
    pub fn to_header(&self) -> String {
        let encode = w3c::percent_encode;
        format!(
            "name={};id={};depth={};path={};correlation={};root={};span={}",
            encode(&self.name),
            encode(&self.id),
            self.depth,
            encode(&self.hierarchy_path),
            encode(&self.correlation_id),
            encode(&self.root_span_id),
            encode(&self.span_id)
        )
    }

    /// Reads the header form within the limits below; anything malformed
    /// gives `None` (the trace still continues, without lineage).
    ///
    /// | field | rule |
    /// |---|---|
    /// | the header | at most [`MAX_LINEAGE_HEADER_BYTES`], else ignored |
    /// | `name`, each path name | 1 to 128 of `A-Z a-z 0-9 _ - . :` (the rule for workflow names); longer ones are cut to 128 |
    /// | `path` | names joined by `/`; more than [`MAX_PATH_SEGMENTS`](super::MAX_PATH_SEGMENTS) are shortened to the first [`PATH_HEAD`](super::PATH_HEAD), `…`, and the last ones |
    /// | `depth` | at most [`MAX_WORKFLOW_DEPTH`] |
    /// | `id` | a UUID |
    /// | `correlation` | 1 to [`MAX_CORRELATION_ID_BYTES`] visible ASCII characters |
    /// | `root`, `span` | 16 lowercase hex digits, not all zero |
    pub fn from_header(header: &str) -> Option<WorkflowLineage> {
        if header.len() > MAX_LINEAGE_HEADER_BYTES {
            return None;
        }
        let mut fields: HashMap<&str, String> = HashMap::new();
        for part in header.split(';') {
            let (key, value) = part.trim().split_once('=')?;
            if fields.insert(key, w3c::percent_decode(value)?).is_some() {
                return None;
            }
        }
        let path = fields.remove("path")?;
        let mut segments = Vec::new();
        for segment in path.split('/') {
            segments.push(if segment == PATH_ELISION {
                segment
            } else {
                bounded_name(segment)?
            });
        }
        let lineage = WorkflowLineage {
            name: bounded_name(&fields.remove("name")?)?.to_owned(),
            id: fields.remove("id")?,
            depth: fields.remove("depth")?.parse().ok()?,
            hierarchy_path: bound_path(&segments.join("/")),
            correlation_id: fields.remove("correlation")?,
            root_span_id: fields.remove("root")?,
            span_id: fields.remove("span")?,
        };
        lineage.is_valid().then_some(lineage)
    }

    fn is_valid(&self) -> bool {
        Uuid::parse_str(&self.id).is_ok()
            && (1..=MAX_CORRELATION_ID_BYTES).contains(&self.correlation_id.len())
            && self.correlation_id.bytes().all(|b| b.is_ascii_graphic())
            && [&self.root_span_id, &self.span_id].iter().all(|id| {
                id.len() == 16
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    && SpanId::from_hex(id).is_ok_and(|id| id != SpanId::INVALID)
            })
            && self.depth <= MAX_WORKFLOW_DEPTH
    }
}

/// The longest `workflow-lineage` header read; a longer one is ignored.
/// Every header this crate writes fits: 16 names of 128 bytes and the ids.
pub const MAX_LINEAGE_HEADER_BYTES: usize = 4096;

/// The longest correlation id a lineage may carry.
pub const MAX_CORRELATION_ID_BYTES: usize = 128;

/// The longest workflow name, as the attributes check at compile time.
const MAX_NAME_BYTES: usize = 128;

/// A name made of the characters workflow names allow, cut to 128 bytes.
fn bounded_name(name: &str) -> Option<&str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
    (!name.is_empty() && name.bytes().all(allowed)).then(|| &name[..name.len().min(MAX_NAME_BYTES)])
}
