//! What error text may leave the process: status messages and exception
//! text are exported as the program wrote them, so a database error that
//! quotes a connection string, or a panic that prints a token, would reach the
//! backend. [`ErrorText`] caps their length by default and runs a redaction
//! function of the user's before export.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::record::attributes as attr;

/// The default cap on one error text, in bytes.
pub const DEFAULT_MAX_ERROR_TEXT: usize = 1024;

/// The marker that ends a text cut at the cap.
const CUT_MARKER: &str = "…";

/// A redaction function: takes the text as recorded, returns what may be exported.
type Redact = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// How the worker treats error text before export: the status description of
/// every span with status `Error`, and `exception.message` and
/// `exception.stacktrace` on `exception` events, of our spans and of other
/// libraries' alike.
///
/// First the redaction function (if any) sees the whole text; then the result
/// is cut to at most [`max_len`](Self::max_len) bytes, at a character
/// boundary, ending with `…`. It runs on the export thread, never on the
/// caller's, and only for spans that carry error text.
///
/// ```
/// use workflow_otel::{ErrorText, PipelineConfig};
///
/// let config = PipelineConfig {
///     error_text: ErrorText::default()
///         .max_len(256)
///         .redact(|text| text.replace("hunter2", "[redacted]")),
///     ..PipelineConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct ErrorText {
    max_len: usize,
    redact: Option<Redact>,
}

impl Default for ErrorText {
    fn default() -> Self {
        ErrorText {
            max_len: DEFAULT_MAX_ERROR_TEXT,
            redact: None,
        }
    }
}

impl fmt::Debug for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorText")
            .field("max_len", &self.max_len)
            .field("redact", &self.redact.is_some())
            .finish()
    }
}

impl ErrorText {
    /// The longest text exported, in bytes ([`DEFAULT_MAX_ERROR_TEXT`] by
    /// default; `usize::MAX` exports texts whole).
    pub fn max_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// A function that turns each error text into what may be exported.
    pub fn redact(mut self, redact: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.redact = Some(Arc::new(redact));
        self
    }

    /// The text as it will be exported.
    pub fn filter<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let text = match &self.redact {
            Some(redact) => Cow::Owned(redact(text)),
            None => Cow::Borrowed(text),
        };
        if text.len() <= self.max_len {
            return text;
        }
        let budget = self.max_len.saturating_sub(CUT_MARKER.len());
        let mut end = budget.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut cut = String::with_capacity(end + CUT_MARKER.len());
        cut.push_str(&text[..end]);
        if self.max_len >= CUT_MARKER.len() {
            cut.push_str(CUT_MARKER);
        }
        Cow::Owned(cut)
    }

    /// The value of an event's attribute as exported: the error text of an
    /// `exception` event goes through the rule.
    pub(crate) fn event_value<'a>(&self, event: &str, attribute: &'a KeyValue) -> Cow<'a, Value> {
        if event == attr::EXCEPTION_EVENT
            && is_error_key(attribute.key.as_str())
            && let Value::String(text) = &attribute.value
            && let Cow::Owned(filtered) = self.filter(text.as_str())
        {
            return Cow::Owned(Value::from(filtered));
        }
        Cow::Borrowed(&attribute.value)
    }

    /// Applies the rule to one span's error text.
    pub(crate) fn apply(&self, span: &mut SpanData) {
        if let Status::Error { description } = &span.status
            && let Cow::Owned(filtered) = self.filter(description)
        {
            span.status = Status::error(filtered);
        }
        for event in span.events.events.iter_mut() {
            for attribute in event.attributes.iter_mut() {
                if let Cow::Owned(filtered) = self.event_value(&event.name, attribute) {
                    attribute.value = filtered;
                }
            }
        }
    }
}

/// The semantic-convention key for an exception's stack trace.
const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";

/// Whether an `exception` event's attribute holds error text.
fn is_error_key(key: &str) -> bool {
    key == attr::EXCEPTION_MESSAGE || key == EXCEPTION_STACKTRACE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary_with_a_marker() {
        let rule = ErrorText::default().max_len(8);
        assert_eq!(rule.filter("short"), "short");
        assert_eq!(rule.filter("12345678"), "12345678");
        assert_eq!(rule.filter("123456789"), "12345…");
        // "é" is two bytes: the cut never splits it.
        assert_eq!(rule.filter("1234éééé"), "1234…");
        assert_eq!(ErrorText::default().max_len(0).filter("abc"), "");
    }

    #[test]
    fn redaction_sees_the_whole_text_before_the_cut() {
        let rule = ErrorText::default()
            .max_len(20)
            .redact(|text| text.replace("password=hunter2", "password=***"));
        assert_eq!(
            rule.filter("login failed: password=hunter2 for admin"),
            "login failed: pas…"
        );
        assert_eq!(rule.filter("bad password=hunter2"), "bad password=***");
    }
}
