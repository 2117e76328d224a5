//! The span limit variables, with the specification's precedence: a
//! span-specific variable first, then the general `OTEL_ATTRIBUTE_*` one,
//! then the default.

use crate::error::SetupError;
use crate::pipeline::SpanLimits;

/// The limits the environment gives; a value that is not a whole number
/// from 0 to 2^32 - 1 leaves that limit at its default and is a problem.
pub(crate) fn read_limits(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<SetupError>,
) -> SpanLimits {
    let mut read = |name: &str| {
        let value = get(name)?;
        match value.trim().parse::<u32>() {
            Ok(limit) => Some(limit),
            Err(_) => {
                problems.push(SetupError::new(
                    name,
                    &value,
                    format!("expected a whole number from 0 to {}", u32::MAX),
                ));
                None
            }
        }
    };
    let count = read("OTEL_ATTRIBUTE_COUNT_LIMIT");
    let length = read("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT");
    let defaults = SpanLimits::default();
    SpanLimits {
        attribute_count: read("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT")
            .or(count)
            .unwrap_or(defaults.attribute_count),
        attribute_value_length: read("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT").or(length),
        event_count: read("OTEL_SPAN_EVENT_COUNT_LIMIT").unwrap_or(defaults.event_count),
        link_count: read("OTEL_SPAN_LINK_COUNT_LIMIT").unwrap_or(defaults.link_count),
        event_attribute_count: read("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT")
            .or(count)
            .unwrap_or(defaults.event_attribute_count),
        link_attribute_count: read("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT")
            .or(count)
            .unwrap_or(defaults.link_attribute_count),
        event_and_link_value_length: length,
    }
}
