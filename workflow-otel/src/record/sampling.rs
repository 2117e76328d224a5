//! Which trace a new span joins, and whether it is recorded: its parent's
//! decision, or, for a root, the sampler's, which sees the span's name,
//! kind and attributes at start and may add attributes of its own.

use std::borrow::Cow;

use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags};
use opentelemetry::{Context, KeyValue};

use crate::record::ids;
use crate::record::instrumentation::Instrumentation;
use crate::record::raw::Extras;
use crate::record::site::Site;

/// Trace Context Level 2's `random` trace flag: the trace id's rightmost 7
/// bytes are random. Kept from a parent that sets it, set on traces we start.
const RANDOM_FLAG: u8 = 0x02;

/// The trace a new span joins and whether it is sampled (its parent's, or a
/// new trace for which the sampler decides, given `attributes`), and the
/// attributes the sampler adds to the span (none with a parent).
pub(crate) fn join_trace(
    (name, kind): (&str, &SpanKind),
    parent: &Context,
    parent_span: &SpanContext,
    instrumentation: &Instrumentation,
    attributes: &[KeyValue],
) -> (SpanContext, Vec<KeyValue>) {
    let (trace_id, trace_state, sampled, random, added) = if parent_span.is_valid() {
        (
            parent_span.trace_id(),
            parent_span.trace_state().clone(),
            parent_span.is_sampled(),
            parent_span.trace_flags().to_u8() & RANDOM_FLAG,
            Vec::new(),
        )
    } else {
        let trace_id = ids::trace_id();
        let (sampled, added, state) =
            instrumentation.samples_root(parent, trace_id, (name, kind), attributes);
        // Our trace ids are random in all their bits: say so (Level 2).
        (trace_id, state, sampled, RANDOM_FLAG, added)
    };
    let flags = TraceFlags::new(random | u8::from(sampled));
    (
        SpanContext::new(trace_id, ids::span_id(), flags, false, trace_state),
        added,
    )
}

/// What a root's sampler sees: its `args(..)` and `fields(..)`, recorded
/// already, then the site's literal fields; borrowed when there are no
/// literals.
pub(crate) fn root_attributes<'a>(
    prefilled: Option<&'a Extras>,
    site: &Site,
) -> Cow<'a, [KeyValue]> {
    let recorded = prefilled.map_or(&[][..], |extras| &extras.attributes);
    if site.literal_fields.is_empty() {
        return Cow::Borrowed(recorded);
    }
    let mut all = Vec::with_capacity(recorded.len() + site.literal_fields.len());
    all.extend_from_slice(recorded);
    all.extend(
        site.literal_fields
            .iter()
            .map(|(key, value)| KeyValue::new(*key, value.to_value())),
    );
    Cow::Owned(all)
}
