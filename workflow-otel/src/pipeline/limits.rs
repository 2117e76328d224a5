//! Span limits, as the OpenTelemetry specification defines them: how many
//! attributes, events and links a span keeps, and how long an attribute's
//! text may be. What is cut is counted, and the counts go on the wire.

use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// What one span may carry (`OTEL_SPAN_*_LIMIT`, `OTEL_ATTRIBUTE_*_LIMIT`,
/// `OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, `OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`).
/// The defaults are the specification's: 128 attributes, events and links,
/// 128 attributes per event and per link, no length limit.
///
/// A string longer than a length limit is cut to that many characters (at a
/// character boundary, never inside one), each string of an array on its own;
/// other values are never cut. An attribute, event or link past a count limit
/// is dropped, the later ones first, and counted: the counts are
/// `dropped_attributes_count`, `dropped_events_count` and
/// `dropped_links_count` in OTLP, `otel.dropped_*_count` tags in Zipkin.
///
/// The limits fall on the user's attributes and events: this crate's own
/// attributes (code location, the workflow lineage, status, duration, at most
/// 20) and the exception event of a failed call are always kept, so a tight
/// limit never breaks the tree, the viewer or tail sampling, and the user's
/// attributes get what room is left.
///
/// ```
/// use workflow_otel::{PipelineConfig, SpanLimits};
///
/// let config = PipelineConfig {
///     span_limits: SpanLimits {
///         attribute_value_length: Some(1024),
///         ..SpanLimits::default()
///     },
///     ..PipelineConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    /// Attributes per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, else
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`; 128).
    pub attribute_count: u32,
    /// Characters per string of a span attribute
    /// (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`; none).
    pub attribute_value_length: Option<u32>,
    /// Events per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`; 128).
    pub event_count: u32,
    /// Links per span (`OTEL_SPAN_LINK_COUNT_LIMIT`; 128).
    pub link_count: u32,
    /// Attributes per event (`OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, else
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`; 128).
    pub event_attribute_count: u32,
    /// Attributes per link (`OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`, else
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`; 128).
    pub link_attribute_count: u32,
    /// Characters per string of an event's or a link's attribute: the
    /// general limit, `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` (none).
    pub event_and_link_value_length: Option<u32>,
}

/// The specification's default count limit.
pub(crate) const DEFAULT_COUNT: u32 = 128;

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            attribute_count: DEFAULT_COUNT,
            attribute_value_length: None,
            event_count: DEFAULT_COUNT,
            link_count: DEFAULT_COUNT,
            event_attribute_count: DEFAULT_COUNT,
            link_attribute_count: DEFAULT_COUNT,
            event_and_link_value_length: None,
        }
    }
}

impl SpanLimits {
    /// The SDK's form, for spans other libraries open through the tracer
    /// provider `setup()` installs (the SDK has no length limit: the worker
    /// applies it, see [`SpanLimits::apply_to`]).
    pub(crate) fn to_sdk(self) -> opentelemetry_sdk::trace::SpanLimits {
        opentelemetry_sdk::trace::SpanLimits {
            max_attributes_per_span: self.attribute_count,
            max_events_per_span: self.event_count,
            max_links_per_span: self.link_count,
            max_attributes_per_event: self.event_attribute_count,
            max_attributes_per_link: self.link_attribute_count,
        }
    }

    /// Cuts another library's span to the limits, adding what it drops to
    /// the span's counts. Its provider may have had other limits, or none.
    pub(crate) fn apply_to(&self, span: &mut SpanData) {
        span.dropped_attributes_count = span.dropped_attributes_count.saturating_add(cut_list(
            &mut span.attributes,
            self.attribute_count,
            self.attribute_value_length,
        ));
        let events = &mut span.events;
        events.dropped_count = events
            .dropped_count
            .saturating_add(drop_past(&mut events.events, self.event_count));
        for event in &mut events.events {
            event.dropped_attributes_count =
                event.dropped_attributes_count.saturating_add(cut_list(
                    &mut event.attributes,
                    self.event_attribute_count,
                    self.event_and_link_value_length,
                ));
        }
        let links = &mut span.links;
        links.dropped_count = links
            .dropped_count
            .saturating_add(drop_past(&mut links.links, self.link_count));
        for link in &mut links.links {
            link.dropped_attributes_count = link.dropped_attributes_count.saturating_add(cut_list(
                &mut link.attributes,
                self.link_attribute_count,
                self.event_and_link_value_length,
            ));
        }
    }

    /// An event's attributes as the caller adds them: cut to the event
    /// limits; returns how many were dropped.
    pub(crate) fn cut_event_attributes(&self, attributes: &mut Vec<KeyValue>) -> u32 {
        cut_list(
            attributes,
            self.event_attribute_count,
            self.event_and_link_value_length,
        )
    }
}

/// Drops the members of `list` past `limit`; returns how many.
fn drop_past<T>(list: &mut Vec<T>, limit: u32) -> u32 {
    let limit = limit as usize;
    let dropped = list.len().saturating_sub(limit);
    list.truncate(limit);
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

/// Drops the attributes past `count` and cuts the strings of the rest.
fn cut_list(attributes: &mut Vec<KeyValue>, count: u32, length: Option<u32>) -> u32 {
    let dropped = drop_past(attributes, count);
    if let Some(length) = length {
        for attribute in attributes {
            if let Some(value) = cut_value(&attribute.value, length) {
                attribute.value = value;
            }
        }
    }
    dropped
}

/// `text` cut to at most `limit` characters; `text` itself if it fits.
#[inline]
pub(crate) fn cut_str(text: &str, limit: u32) -> &str {
    // A string of at most `limit` bytes has at most `limit` characters.
    let limit_bytes = limit as usize;
    if text.len() <= limit_bytes {
        return text;
    }
    // ASCII up to the limit: the limit-th character ends at that byte.
    if text.as_bytes()[..limit_bytes].is_ascii() {
        return &text[..limit_bytes];
    }
    match text.char_indices().nth(limit_bytes) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The value cut to `limit` characters per string, if any string was longer.
pub(crate) fn cut_value(value: &Value, limit: u32) -> Option<Value> {
    match value {
        Value::String(text) => {
            let cut = cut_str(text.as_str(), limit);
            (cut.len() < text.as_str().len()).then(|| Value::String(cut.to_owned().into()))
        }
        Value::Array(Array::String(texts)) => {
            let too_long = texts
                .iter()
                .any(|text| cut_str(text.as_str(), limit).len() < text.as_str().len());
            too_long.then(|| {
                let cut = texts
                    .iter()
                    .map(|text| cut_str(text.as_str(), limit).to_owned().into())
                    .collect();
                Value::Array(Array::String(cut))
            })
        }
        _ => None,
    }
}

/// A user's attribute cut to `limit` characters per string, as the caller
/// stores it: only a string that is too long is copied, once.
#[inline]
pub(crate) fn cut_attribute(attribute: KeyValue, limit: Option<u32>) -> KeyValue {
    match limit {
        None => attribute,
        Some(limit) => cut_stored(attribute, limit),
    }
}

#[inline(never)]
fn cut_stored(mut attribute: KeyValue, limit: u32) -> KeyValue {
    match attribute.value {
        Value::String(text) => {
            let end = cut_str(text.as_str(), limit).len();
            attribute.value = if end < text.as_str().len() {
                // One allocation of the exact size: a truncated `String`
                // would be reallocated again to become the value's box.
                Value::String(text.as_str()[..end].to_owned().into())
            } else {
                Value::String(text)
            };
        }
        ref array @ Value::Array(_) => {
            if let Some(value) = cut_value(array, limit) {
                attribute.value = value;
            }
        }
        _ => {}
    }
    attribute
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_cut_at_character_boundaries() {
        assert_eq!(cut_str("héllo", 2), "hé");
        assert_eq!(cut_str("héllo", 5), "héllo");
        assert_eq!(cut_str("héllo", 0), "");
        // Four bytes, one character: never split.
        assert_eq!(cut_str("😀😀", 1), "😀");
        assert_eq!(cut_str("日本語", 2), "日本");
    }

    #[test]
    fn arrays_are_cut_per_string_and_other_values_never() {
        let array = Value::Array(Array::String(vec!["abc".into(), "de".into()]));
        assert_eq!(
            cut_value(&array, 2),
            Some(Value::Array(Array::String(vec!["ab".into(), "de".into()])))
        );
        assert_eq!(cut_value(&Value::I64(123_456), 2), None);
        assert_eq!(cut_value(&Value::from("ab"), 2), None);
    }
}
