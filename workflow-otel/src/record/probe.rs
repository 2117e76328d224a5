//! Reading a call's outcome and its recorded arguments without naming their
//! types: the macros wrap a reference in [`Probe`] and call a method that the
//! compiler resolves, through autoref specialisation, to the most specific
//! trait that applies (an error with `Display`, with `Debug` only, any other
//! value; a typed attribute, or `Debug` text).

use std::borrow::Cow;
use std::fmt::{Debug, Display};

use opentelemetry::{Array, Value};

use crate::record::run::Finish;
use crate::record::span::Fields;

/// Names the `error.type` of an error of yours: what dashboards group
/// failures by (the span's `error.type`, the `exception` event's
/// `exception.type`, the `error_type` label of the failure counters).
///
/// Without it an error is named by its type's path
/// (`my_crate::BillingError`), a `Box<T>`, `Arc<T>` or `Rc<T>` by `T`'s; a
/// type that says nothing about the failure (a tuple, `String`, `&str`, a
/// `dyn Error`, `anyhow::Error`, `eyre::Report`) is `_OTHER`, the semantic
/// conventions' fallback, since Rust cannot name the type behind it. The
/// name must come from a small fixed set: it is a metric label.
///
/// ```
/// use workflow_otel::{ErrorType, workflow};
///
/// #[derive(Debug)]
/// enum PaymentError { Declined, Timeout }
///
/// impl std::fmt::Display for PaymentError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(match self { PaymentError::Declined => "card declined", PaymentError::Timeout => "no answer" })
///     }
/// }
///
/// impl ErrorType for PaymentError {
///     fn error_type(&self) -> &'static str {
///         match self {
///             PaymentError::Declined => "payment.declined",
///             PaymentError::Timeout => "payment.timeout",
///         }
///     }
/// }
///
/// #[workflow]
/// fn charge(cents: u64) -> Result<u64, PaymentError> {
///     if cents > 100 { Err(PaymentError::Declined) } else { Ok(cents) }
/// }
/// assert!(charge(500).is_err()); // error.type = "payment.declined"
/// ```
pub trait ErrorType {
    /// This error's `error.type`: one of a few fixed names.
    fn error_type(&self) -> &'static str;
}

/// The semantic conventions' `error.type` for an error that names nothing.
pub(crate) const OTHER_ERROR: &str = "_OTHER";

/// The `error.type` of an error of type `E` that does not name its own.
pub(crate) fn type_label<E: ?Sized>() -> &'static str {
    label_of(std::any::type_name::<E>())
}

/// Types whose name says nothing about the failure they carry.
const UNINFORMATIVE: &[&str] = &[
    "alloc::string::String",
    "str",
    "alloc::borrow::Cow<str>",
    "anyhow::Error",
    "eyre::Report",
];

fn label_of(mut name: &'static str) -> &'static str {
    // Pointers say nothing of the failure: the type inside does.
    while let Some(inner) = ["alloc::boxed::Box<", "alloc::sync::Arc<", "alloc::rc::Rc<"]
        .iter()
        .find_map(|wrapper| name.strip_prefix(wrapper)?.strip_suffix('>'))
    {
        name = inner;
    }
    let name = name.trim_start_matches('&');
    if name.is_empty()
        || name.starts_with(['(', '[', '*'])
        || name.starts_with("dyn ")
        || UNINFORMATIVE.contains(&name)
    {
        OTHER_ERROR
    } else {
        name
    }
}

/// Wraps a reference so that the compiler picks, through autoref
/// specialisation, the most specific of the traits below that applies.
#[derive(Debug)]
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// `Err(e)` of any `Result` whose error has `Display` and `Debug`.
pub trait ResultError {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T, E: Display + Debug> ResultError for &&&Probe<'_, Result<T, E>> {
    fn __wfo_outcome(&self, finish: &mut Finish) {
        if let Err(error) = self.0 {
            if finish.outcome_only {
                return finish.error(type_label::<E>(), String::new());
            }
            let message = if finish.err_debug {
                format!("{error:?}")
            } else {
                error.to_string()
            };
            finish.error(type_label::<E>(), message);
        }
    }
}

/// `Err(e)` of a `Result` whose error has only `Debug`.
pub trait ResultDebugError {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T, E: Debug> ResultDebugError for &&Probe<'_, Result<T, E>> {
    fn __wfo_outcome(&self, finish: &mut Finish) {
        if let Err(error) = self.0 {
            if finish.outcome_only {
                return finish.error(type_label::<E>(), String::new());
            }
            finish.error(type_label::<E>(), format!("{error:?}"));
        }
    }
}

/// `Err(e)` of a `Result` whose error can't be formatted: its type names it.
pub trait ResultOpaqueError {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T, E> ResultOpaqueError for &Probe<'_, Result<T, E>> {
    fn __wfo_outcome(&self, finish: &mut Finish) {
        if self.0.is_err() {
            let message = if finish.outcome_only {
                String::new()
            } else {
                std::any::type_name::<E>().to_owned()
            };
            finish.error(type_label::<E>(), message);
        }
    }
}

/// `Err(e)` whose error names its own type ([`ErrorType`]): that name
/// replaces the one read from the type. A second probe, so that the first
/// keeps its three levels whatever the error implements.
pub trait NamedError {
    #[doc(hidden)]
    fn __wfo_error_type(&self, finish: &mut Finish);
}

impl<T, E: ErrorType> NamedError for &Probe<'_, Result<T, E>> {
    fn __wfo_error_type(&self, finish: &mut Finish) {
        if let Err(error) = self.0 {
            finish.name_error(error.error_type());
        }
    }
}

/// Any other outcome: the type's name stands.
pub trait UnnamedError {
    #[doc(hidden)]
    fn __wfo_error_type(&self, finish: &mut Finish);
}

impl<T: ?Sized> UnnamedError for Probe<'_, T> {
    #[inline(always)]
    fn __wfo_error_type(&self, _: &mut Finish) {}
}

/// Any other return value: the call succeeded.
pub trait NotAResult {
    #[doc(hidden)]
    fn __wfo_outcome(&self, finish: &mut Finish);
}

impl<T: ?Sized> NotAResult for Probe<'_, T> {
    fn __wfo_outcome(&self, _: &mut Finish) {}
}

/// Values that become typed attributes rather than strings.
pub trait AttributeValue {
    /// The attribute value.
    fn to_attribute_value(&self) -> Value;
}

macro_rules! lossless_ints {
    ($($t:ty),*) => {$(
        impl AttributeValue for $t {
            fn to_attribute_value(&self) -> Value {
                Value::I64(i64::from(*self))
            }
        }
    )*};
}
lossless_ints!(i8, i16, i32, i64, u8, u16, u32);

// OpenTelemetry integers are i64; a value that does not fit is kept exactly,
// as its decimal text, rather than wrapped.
macro_rules! wide_ints {
    ($($t:ty),*) => {$(
        impl AttributeValue for $t {
            fn to_attribute_value(&self) -> Value {
                match i64::try_from(*self) {
                    Ok(value) => Value::I64(value),
                    Err(_) => Value::from(self.to_string()),
                }
            }
        }
    )*};
}
wide_ints!(u64, usize, isize, i128, u128);

impl AttributeValue for f64 {
    fn to_attribute_value(&self) -> Value {
        Value::F64(*self)
    }
}

impl AttributeValue for f32 {
    fn to_attribute_value(&self) -> Value {
        Value::F64(f64::from(*self))
    }
}

impl AttributeValue for bool {
    fn to_attribute_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl AttributeValue for str {
    fn to_attribute_value(&self) -> Value {
        Value::from(self.to_owned())
    }
}

impl AttributeValue for String {
    fn to_attribute_value(&self) -> Value {
        Value::from(self.clone())
    }
}

impl AttributeValue for Cow<'_, str> {
    fn to_attribute_value(&self) -> Value {
        Value::from(self.clone().into_owned())
    }
}

impl<T: AttributeValue + ?Sized> AttributeValue for &T {
    fn to_attribute_value(&self) -> Value {
        (**self).to_attribute_value()
    }
}

/// A field whose type is an [`AttributeValue`] is recorded typed.
pub trait TypedField {
    #[doc(hidden)]
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str);
}

impl<T: AttributeValue + ?Sized> TypedField for &Probe<'_, T> {
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str) {
        fields.value(key, self.0.to_attribute_value());
    }
}

/// Any other field is recorded with `Debug`, if it has it: the bound is on
/// the method, so that a value without `Debug` reaches [`Recordable`]'s
/// message, at the user's token, rather than a "method not found".
pub trait DebugField<T: ?Sized> {
    #[doc(hidden)]
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str)
    where
        T: Recordable;
}

impl<T: ?Sized> DebugField<T> for Probe<'_, T> {
    fn __wfo_record(&self, fields: &mut Fields<'_>, key: &'static str)
    where
        T: Recordable,
    {
        self.0.__wfo_debug(fields, key);
    }
}

/// What `args(..)` and `fields(..)` can record: any `Debug` value (integers,
/// floats, bools, strings and their slices are kept typed).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a span attribute: it does not implement `Debug`",
    label = "recorded by `args(..)` or `fields(..)`",
    note = "derive `Debug` for it, or record one of its fields instead: `fields(name = value.field)`"
)]
pub trait Recordable {
    #[doc(hidden)]
    fn __wfo_debug(&self, fields: &mut Fields<'_>, key: &'static str);
}

impl<T: Debug + ?Sized> Recordable for T {
    fn __wfo_debug(&self, fields: &mut Fields<'_>, key: &'static str) {
        fields.debug(key, &self);
    }
}

/// Element types whose slices become OpenTelemetry array values.
pub trait ArrayItem: Sized {
    /// The array value of `items`.
    fn array(items: &[Self]) -> Array;
}

macro_rules! int_items {
    ($($t:ty),*) => {$(
        impl ArrayItem for $t {
            fn array(items: &[Self]) -> Array {
                // All as integers if every one fits, else all as exact text.
                match items.iter().map(|item| i64::try_from(*item)).collect::<Result<Vec<i64>, _>>() {
                    Ok(values) => Array::I64(values),
                    Err(_) => Array::String(items.iter().map(|item| item.to_string().into()).collect()),
                }
            }
        }
    )*};
}
int_items!(
    i8, i16, i32, i64, u8, u16, u32, u64, usize, isize, i128, u128
);

impl ArrayItem for f64 {
    fn array(items: &[Self]) -> Array {
        Array::F64(items.to_vec())
    }
}

impl ArrayItem for f32 {
    fn array(items: &[Self]) -> Array {
        Array::F64(items.iter().map(|item| f64::from(*item)).collect())
    }
}

impl ArrayItem for bool {
    fn array(items: &[Self]) -> Array {
        Array::Bool(items.to_vec())
    }
}

impl ArrayItem for String {
    fn array(items: &[Self]) -> Array {
        Array::String(items.iter().map(|item| item.clone().into()).collect())
    }
}

impl ArrayItem for &str {
    fn array(items: &[Self]) -> Array {
        Array::String(items.iter().map(|item| item.to_string().into()).collect())
    }
}

impl<T: ArrayItem> AttributeValue for [T] {
    fn to_attribute_value(&self) -> Value {
        Value::Array(T::array(self))
    }
}

impl<T: ArrayItem> AttributeValue for Vec<T> {
    fn to_attribute_value(&self) -> Value {
        Value::Array(T::array(self))
    }
}

impl<T: ArrayItem, const N: usize> AttributeValue for [T; N] {
    fn to_attribute_value(&self) -> Value {
        Value::Array(T::array(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_that_name_nothing_are_other() {
        assert_eq!(type_label::<(u16, String)>(), "_OTHER");
        assert_eq!(type_label::<String>(), "_OTHER");
        assert_eq!(type_label::<&'static str>(), "_OTHER");
        assert_eq!(
            type_label::<Box<dyn std::error::Error + Send + Sync>>(),
            "_OTHER"
        );
        assert_eq!(
            type_label::<std::sync::Arc<dyn std::error::Error>>(),
            "_OTHER"
        );
        assert_eq!(type_label::<[u8; 2]>(), "_OTHER");
        assert_eq!(type_label::<()>(), "_OTHER");
    }

    #[test]
    fn pointers_name_the_type_inside() {
        assert_eq!(
            type_label::<Box<std::num::ParseIntError>>(),
            "core::num::error::ParseIntError"
        );
        assert_eq!(
            type_label::<std::rc::Rc<Box<std::fmt::Error>>>(),
            "core::fmt::Error"
        );
        assert_eq!(type_label::<std::io::Error>(), "std::io::error::Error");
    }
}
