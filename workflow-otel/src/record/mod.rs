//! What an annotated call does: start a span from its static site, run the
//! body with the span (and, for workflows, the workflow) current, finish it
//! with the outcome, and hand a flat record to the pipeline. Also the data
//! every span carries: the workflow context, ids, the clock, attribute names.

pub mod attributes;
pub(crate) mod context;
pub(crate) mod current;
pub(crate) mod fields;
pub(crate) mod ids;
pub(crate) mod instrumentation;
pub(crate) mod limited;
pub(crate) mod probe;
pub(crate) mod raw;
pub(crate) mod retry;
pub(crate) mod run;
pub(crate) mod sampling;
pub(crate) mod site;
pub(crate) mod span;
pub(crate) mod spawn;
pub(crate) mod time;
pub(crate) mod usage;
