//! The GenAI conventions' client metrics, from model calls
//! ([`genai`](crate::genai)): `gen_ai.client.operation.duration` and
//! `gen_ai.client.token.usage` with the conventions' bucket boundaries, and
//! a cost counter by model. Labels are the operation, the provider, the
//! requested model (names from code), the token type and, for failed calls,
//! `error.type`. Model calls are far rarer than steps: each adds to its
//! series under a lock.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::SpanContext;

use crate::metrics::exemplar::{EXEMPLAR_INTERVAL, Exemplar};
use crate::metrics::series::{Histogram, MAX_SERIES, OTHER};

/// `gen_ai.client.operation.duration`'s boundaries in the conventions, seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `gen_ai.client.token.usage`'s boundaries in the conventions, tokens.
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// One label set of model calls.
#[derive(Clone, Debug)]
pub(crate) struct ModelSeries {
    pub(crate) operation: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    /// Empty for calls that succeeded.
    pub(crate) error_type: String,
    pub(crate) duration: Histogram,
    pub(crate) input_tokens: Histogram,
    pub(crate) output_tokens: Histogram,
    /// Cost by currency.
    pub(crate) cost: Vec<(String, f64)>,
    /// A sampled call per bucket of `duration`, `input_tokens` and
    /// `output_tokens`, replaced at most every [`EXEMPLAR_INTERVAL`].
    pub(crate) exemplars: [Vec<Option<Exemplar>>; 3],
}

/// Keeps `span`'s call as the exemplar of the bucket `value` falls in.
fn keep_exemplar(
    exemplars: &mut [Option<Exemplar>],
    bounds: &[f64],
    value: f64,
    span: &SpanContext,
    now: SystemTime,
) {
    let bucket = bounds
        .iter()
        .position(|bound| value <= *bound)
        .unwrap_or(bounds.len());
    let Some(slot) = exemplars.get_mut(bucket) else {
        return;
    };
    let due = slot.is_none_or(|kept| {
        now.duration_since(kept.time)
            .is_ok_and(|since| since >= EXEMPLAR_INTERVAL)
    });
    if due {
        *slot = Some(Exemplar {
            trace_id: span.trace_id().to_bytes(),
            span_id: span.span_id().to_bytes(),
            value,
            time: now,
        });
    }
}

static SERIES: Mutex<Vec<ModelSeries>> = Mutex::new(Vec::new());

/// One finished model call.
pub(crate) struct ModelCallRecord<'a> {
    pub(crate) operation: &'a str,
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
    pub(crate) error_type: Option<&'a str>,
    pub(crate) duration: Duration,
    /// Input and output tokens, for a call that answered.
    pub(crate) tokens: Option<(u64, u64)>,
    pub(crate) cost: Option<(f64, &'a str)>,
    /// The call's span, when it was sampled: the exemplar of its buckets.
    pub(crate) span: Option<&'a SpanContext>,
}

/// Adds a model call, if metrics are on.
pub(crate) fn record(call: &ModelCallRecord<'_>) {
    if !crate::metrics::series::enabled() {
        return;
    }
    let mut series = SERIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let error_type = call.error_type.unwrap_or_default();
    let find = |series: &[ModelSeries], model: &str| {
        series.iter().position(|known| {
            known.operation == call.operation
                && known.provider == call.provider
                && known.model == model
                && known.error_type == error_type
        })
    };
    // Models are named in code; past the limit, a program that names them
    // at run time is counted under the model `_OTHER`.
    let model = if find(&series, call.model).is_none() && series.len() >= MAX_SERIES {
        OTHER
    } else {
        call.model
    };
    let position = match find(&series, model) {
        Some(position) => position,
        None => {
            series.push(ModelSeries {
                operation: call.operation.to_owned(),
                provider: call.provider.to_owned(),
                model: model.to_owned(),
                error_type: error_type.to_owned(),
                duration: Histogram::new(&DURATION_BUCKETS),
                input_tokens: Histogram::new(&TOKEN_BUCKETS),
                output_tokens: Histogram::new(&TOKEN_BUCKETS),
                cost: Vec::new(),
                exemplars: [
                    vec![None; DURATION_BUCKETS.len() + 1],
                    vec![None; TOKEN_BUCKETS.len() + 1],
                    vec![None; TOKEN_BUCKETS.len() + 1],
                ],
            });
            series.len() - 1
        }
    };
    let entry = &mut series[position];
    entry
        .duration
        .observe(&DURATION_BUCKETS, call.duration.as_secs_f64());
    if let Some((input, output)) = call.tokens {
        entry.input_tokens.observe(&TOKEN_BUCKETS, input as f64);
        entry.output_tokens.observe(&TOKEN_BUCKETS, output as f64);
    }
    if let Some(span) = call.span {
        let now = SystemTime::now();
        let seconds = call.duration.as_secs_f64();
        let [duration, input_tokens, output_tokens] = &mut entry.exemplars;
        keep_exemplar(duration, &DURATION_BUCKETS, seconds, span, now);
        if let Some((input, output)) = call.tokens {
            keep_exemplar(input_tokens, &TOKEN_BUCKETS, input as f64, span, now);
            keep_exemplar(output_tokens, &TOKEN_BUCKETS, output as f64, span, now);
        }
    }
    if let Some((cost, currency)) = call.cost {
        match entry.cost.iter_mut().find(|(known, _)| known == currency) {
            Some((_, total)) => *total += cost,
            None => entry.cost.push((currency.to_owned(), cost)),
        }
    }
}

/// Every model-call series as it is now.
pub(crate) fn snapshot() -> Vec<ModelSeries> {
    SERIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}
