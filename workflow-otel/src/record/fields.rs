//! What `args(..)` and `fields(..)` record as a span starts.

use std::fmt::{Debug, Display};

use opentelemetry::{KeyValue, Value};

use crate::record::raw::Extras;
use crate::record::site::Literal;

/// Records `args(..)` and `fields(..)` onto a span that is recording.
#[derive(Debug)]
pub struct Fields<'a> {
    extras: &'a mut Option<Box<Extras>>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(extras: &'a mut Option<Box<Extras>>) -> Fields<'a> {
        Fields { extras }
    }
}

impl Fields<'_> {
    fn push(&mut self, attribute: KeyValue) {
        self.extras
            .get_or_insert_with(Extras::boxed)
            .attributes
            .push(attribute);
    }

    /// A typed value (integer, float, bool, string).
    pub fn value(&mut self, key: &'static str, value: Value) {
        self.push(KeyValue::new(key, value));
    }

    /// A literal (`fields(key = "text")`), kept as it is: a string is not
    /// copied.
    pub fn literal(&mut self, key: &'static str, value: Literal) {
        self.push(KeyValue::new(key, value.to_value()));
    }

    /// A value recorded with its `Display` text (`fields(key = %value)`).
    pub fn display(&mut self, key: &'static str, value: &dyn Display) {
        self.push(KeyValue::new(key, value.to_string()));
    }

    /// A value recorded with its `Debug` text (`fields(key = ?value)`).
    pub fn debug(&mut self, key: &'static str, value: &dyn Debug) {
        self.push(KeyValue::new(key, format!("{value:?}")));
    }
}

/// The fields closure of a function with no `args(..)` or `fields(..)`.
pub fn no_fields(_: &mut Fields<'_>) {}
