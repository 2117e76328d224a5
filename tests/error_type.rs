//! `error.type` as dashboards group by it: a type's path where it names the
//! failure, `_OTHER` where Rust cannot tell (tuples, strings, `dyn Error`,
//! `anyhow`), and the error's own name through `ErrorType`. Checked on the
//! span and its `exception` event (the failure counters take the same name).

use std::fmt;

use workflow_otel::testing::Capture;
use workflow_otel::{ErrorType, step, workflow};

fn error_types(capture: &Capture) -> Vec<(String, String, String)> {
    let mut seen: Vec<_> = capture
        .spans()
        .iter()
        .map(|span| {
            let attribute = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.to_string())
                    .unwrap_or_default()
            };
            let exception = span
                .events
                .iter()
                .flat_map(|event| event.attributes.iter())
                .find(|kv| kv.key.as_str() == "exception.type")
                .map(|kv| kv.value.to_string())
                .unwrap_or_default();
            (span.name.to_string(), attribute("error.type"), exception)
        })
        .collect();
    seen.sort();
    seen
}

#[derive(Debug)]
enum PaymentError {
    Declined,
    Timeout,
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PaymentError::Declined => "card declined",
            PaymentError::Timeout => "no answer",
        })
    }
}

impl std::error::Error for PaymentError {}

impl ErrorType for PaymentError {
    fn error_type(&self) -> &'static str {
        match self {
            PaymentError::Declined => "payment.declined",
            PaymentError::Timeout => "payment.timeout",
        }
    }
}

/// An error of the user's without the hook: its path.
#[derive(Debug)]
struct StockError;

impl fmt::Display for StockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("out of stock")
    }
}

impl std::error::Error for StockError {}

#[step]
fn tuple() -> Result<(), (u16, String)> {
    Err((402, "billing refused".into()))
}

#[step]
fn text() -> Result<(), String> {
    Err("no".into())
}

#[step]
fn boxed_dyn() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err(Box::new(StockError))
}

#[step]
fn boxed_concrete() -> Result<(), Box<StockError>> {
    Err(Box::new(StockError))
}

#[step]
fn with_anyhow() -> anyhow::Result<()> {
    Err(anyhow::Error::new(StockError).context("reserving"))
}

#[step]
fn plain() -> Result<(), StockError> {
    Err(StockError)
}

#[step]
fn declined() -> Result<(), PaymentError> {
    Err(PaymentError::Declined)
}

#[step]
async fn timed_out() -> Result<(), PaymentError> {
    Err(PaymentError::Timeout)
}

#[workflow]
fn checkout() -> Result<(), PaymentError> {
    let _ = tuple();
    let _ = text();
    let _ = boxed_dyn();
    let _ = boxed_concrete();
    let _ = with_anyhow();
    let _ = plain();
    let _ = declined();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let _ = runtime.block_on(timed_out());
    Err(PaymentError::Declined)
}

#[test]
fn error_types_are_low_cardinality_names() {
    let capture = Capture::new();
    let _ = capture.run(checkout);
    let other = "_OTHER".to_owned();
    let stock = "error_type::StockError".to_owned();
    let expected: Vec<(String, String, String)> = [
        ("boxed_concrete", &stock),
        ("boxed_dyn", &other),
        ("checkout", &"payment.declined".to_owned()),
        ("declined", &"payment.declined".to_owned()),
        ("plain", &stock),
        ("text", &other),
        ("timed_out", &"payment.timeout".to_owned()),
        ("tuple", &other),
        ("with_anyhow", &other),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_owned(), kind.clone(), kind.clone()))
    .collect();
    assert_eq!(error_types(&capture), expected);
}

#[test]
fn the_message_is_kept_when_the_type_is_other() {
    let capture = Capture::new();
    let _ = capture.run(tuple);
    let spans = capture.spans();
    assert_eq!(
        spans[0].status,
        opentelemetry::trace::Status::error("(402, \"billing refused\")")
    );
}
