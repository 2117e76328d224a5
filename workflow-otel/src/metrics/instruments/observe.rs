//! Observable instruments' callbacks, run on a thread of their own at each
//! collection (a scrape, a push). A collection waits for them at most
//! [`CALLBACK_DEADLINE`]: a callback that blocks holds up its own thread,
//! never a scrape, which then shows the values of the last collection that
//! finished (and says so once on stderr). A callback that panics is caught:
//! its instrument keeps its last values, the others are collected as usual.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::metrics::instruments::instrument::{Callbacks, Instrument, Observations, lock};

/// The longest a collection waits for the observable instruments' callbacks.
pub const CALLBACK_DEADLINE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Rounds {
    asked: u64,
    done: u64,
    /// The callback running now: whose.
    running: Option<String>,
    /// The last round a collection stopped waiting for.
    abandoned: u64,
    stuck_reported: bool,
}

#[derive(Debug)]
struct Collector {
    rounds: Mutex<Rounds>,
    wake: Condvar,
}

static COLLECTOR: OnceLock<Option<Collector>> = OnceLock::new();

/// Runs every observable instrument's callbacks (those `instruments` gives
/// when the round starts), waiting at most [`CALLBACK_DEADLINE`].
pub(crate) fn collect(instruments: fn() -> Vec<Arc<Instrument>>) {
    let Some(collector) = COLLECTOR
        .get_or_init(|| {
            let started = std::thread::Builder::new()
                .name("workflow-otel-callbacks".to_owned())
                .spawn(move || run(instruments));
            match started {
                Ok(_) => Some(Collector {
                    rounds: Mutex::new(Rounds::default()),
                    wake: Condvar::new(),
                }),
                Err(error) => {
                    eprintln!(
                        "workflow-otel: cannot start the thread for metric callbacks ({error}); \
                         observable instruments are not collected"
                    );
                    None
                }
            }
        })
        .as_ref()
    else {
        return;
    };
    let mut rounds = lock(&collector.rounds);
    // A round an earlier collection gave up on is still stuck in a callback:
    // it will not be done by the time this one must answer either, so the
    // last values are used at once.
    if rounds.done < rounds.abandoned {
        let name = rounds.running.clone().unwrap_or_default();
        report_stuck(&mut rounds.stuck_reported, &name);
        return;
    }
    rounds.asked += 1;
    let ticket = rounds.asked;
    collector.wake.notify_all();
    let mut rounds = collector
        .wake
        .wait_timeout_while(rounds, CALLBACK_DEADLINE, |rounds| rounds.done < ticket)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .0;
    if rounds.done < ticket {
        rounds.abandoned = ticket;
        let name = rounds.running.clone().unwrap_or_default();
        report_stuck(&mut rounds.stuck_reported, &name);
    }
}

/// Waits (at most 30 s) until every round asked for is done: a test that
/// released a stuck callback leaves the collector idle for the next one.
#[cfg(test)]
pub(crate) fn settle() {
    let Some(Some(collector)) = COLLECTOR.get() else {
        return;
    };
    let rounds = lock(&collector.rounds);
    let _ = collector
        .wake
        .wait_timeout_while(rounds, Duration::from_secs(30), |rounds| {
            rounds.done < rounds.asked
        });
}

fn report_stuck(reported: &mut bool, name: &str) {
    if !std::mem::replace(reported, true) {
        eprintln!(
            "workflow-otel: the callback of metric `{name}` did not return within \
             {CALLBACK_DEADLINE:?}; collections show the observable instruments' last values \
             until it does"
        );
    }
}

fn run(instruments: fn() -> Vec<Arc<Instrument>>) {
    let collector = loop {
        // The collector is set right after this thread starts.
        if let Some(Some(collector)) = COLLECTOR.get() {
            break collector;
        }
        std::thread::yield_now();
    };
    loop {
        let ticket = {
            let mut rounds = lock(&collector.rounds);
            while rounds.asked == rounds.done {
                rounds = collector
                    .wake
                    .wait(rounds)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            rounds.asked
        };
        for instrument in instruments() {
            lock(&collector.rounds).running = Some(instrument.spec.name.clone());
            observe(&instrument);
        }
        let mut rounds = lock(&collector.rounds);
        rounds.running = None;
        rounds.stuck_reported = false;
        rounds.done = ticket;
        collector.wake.notify_all();
    }
}

/// Runs one instrument's callbacks into a fresh set of observations, which
/// replace the last ones if every callback returned.
fn observe(instrument: &Instrument) {
    let observations = Observations {
        instrument,
        observed: Mutex::new(Vec::new()),
    };
    let outcome = {
        let callbacks = lock(&instrument.callbacks);
        catch_unwind(AssertUnwindSafe(|| match &*callbacks {
            Callbacks::U64(callbacks) => callbacks.iter().for_each(|call| call(&observations)),
            Callbacks::I64(callbacks) => callbacks.iter().for_each(|call| call(&observations)),
            Callbacks::F64(callbacks) => callbacks.iter().for_each(|call| call(&observations)),
        }))
    };
    match outcome {
        Ok(()) => {
            *lock(&instrument.observed) = observations
                .observed
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        Err(panic) => {
            if !instrument
                .callback_failure_reported
                .swap(true, Ordering::Relaxed)
            {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                eprintln!(
                    "workflow-otel: the callback of metric `{}` panicked ({message}); \
                     it keeps its last values, the other instruments are collected as usual",
                    instrument.spec.name
                );
            }
        }
    }
}
