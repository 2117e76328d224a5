//! `--compare`: two runs side by side, per workflow, step and model call,
//! and which rows regressed. Durations are compared with a one-sided
//! Mann–Whitney U test (no assumption on their distribution, robust to
//! outliers) and a minimum effect size; error rates with a one-sided
//! two-proportion z test and a minimum difference. A row's own time (its
//! duration less its direct children's) tells a regression apart from a
//! consequence of one below it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use opentelemetry::trace::{SpanId, TraceId};
use workflow_otel::terminal_safe;

use crate::model::{Kind, Span, human};
use crate::text::{aligned, percentile};

/// Most spans read of one run; later ones are counted and left out.
pub(crate) const MAX_RUN_SPANS: usize = 2_000_000;
/// Fewest calls in each run for a row to be judged.
pub(crate) const MIN_CALLS: usize = 8;
/// The significance level of both tests.
pub(crate) const ALPHA: f64 = 0.001;
/// The smallest slow-down flagged: the candidate's median at least this
/// much larger, relatively and absolutely.
pub(crate) const MIN_RATIO: f64 = 1.2;
pub(crate) const MIN_NANOS: u64 = 50_000;
/// The smallest rise of the error rate flagged, in points.
pub(crate) const MIN_ERROR_POINTS: f64 = 5.0;

/// A row's key: what the span is, and its name.
pub(crate) type Key = (Kind, String);

/// One span, as the comparison keeps it.
struct Compact {
    id: SpanId,
    parent: SpanId,
    key: usize,
    duration: u64,
    failed: bool,
}

/// One run: its spans by trace, read in order.
#[derive(Default)]
pub(crate) struct Run {
    keys: Vec<Key>,
    key_of: HashMap<Key, usize>,
    traces: HashMap<TraceId, Vec<Compact>>,
    kept: usize,
    pub(crate) left_out: u64,
}

/// Per row: durations, own times, failures.
#[derive(Default)]
struct Samples {
    durations: Vec<u64>,
    own: Vec<u64>,
    failed: u64,
}

impl Run {
    pub(crate) fn add(&mut self, span: &Span) {
        if self.kept >= MAX_RUN_SPANS {
            self.left_out += 1;
            return;
        }
        let key = (span.kind, span.name.clone());
        let next = self.keys.len();
        let key = *self.key_of.entry(key.clone()).or_insert_with(|| {
            self.keys.push(key);
            next
        });
        self.traces.entry(span.trace).or_default().push(Compact {
            id: span.id,
            parent: span.parent,
            key,
            duration: span.duration(),
            failed: span.error.is_some(),
        });
        self.kept += 1;
    }

    /// Samples per key, and which keys are called from which.
    fn samples(&self) -> (BTreeMap<Key, Samples>, BTreeSet<(Key, Key)>) {
        let mut rows: BTreeMap<Key, Samples> = BTreeMap::new();
        let mut calls = BTreeSet::new();
        for spans in self.traces.values() {
            let position: HashMap<SpanId, usize> = spans
                .iter()
                .enumerate()
                .map(|(at, span)| (span.id, at))
                .collect();
            let mut children_time = vec![0_u64; spans.len()];
            for span in spans {
                if let Some(parent) = position.get(&span.parent)
                    && span.parent != SpanId::INVALID
                {
                    children_time[*parent] = children_time[*parent].saturating_add(span.duration);
                    let parent_key = self.keys[spans[*parent].key].clone();
                    calls.insert((parent_key, self.keys[span.key].clone()));
                }
            }
            for (at, span) in spans.iter().enumerate() {
                let samples = rows.entry(self.keys[span.key].clone()).or_default();
                samples.durations.push(span.duration);
                // Children running in parallel can add up to more than
                // their parent: its own time is then none.
                samples
                    .own
                    .push(span.duration.saturating_sub(children_time[at]));
                samples.failed += u64::from(span.failed);
            }
        }
        for samples in rows.values_mut() {
            samples.durations.sort_unstable();
            samples.own.sort_unstable();
        }
        (rows, calls)
    }
}

/// What the comparison says of a row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Slower (or failing more) in itself.
    Regression,
    /// Slower only because the row named (a step or child in it) is.
    Consequence(Key),
    /// Faster, by the same test and effect size.
    Improvement,
    /// No difference the tests can tell from noise.
    Same,
    /// Too few calls in one run, or in one run only.
    NotJudged,
}

/// One row of the comparison.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) key: Key,
    pub(crate) count: [usize; 2],
    pub(crate) error_rate: [f64; 2],
    /// p50, p95, p99 of each run, in nanoseconds.
    pub(crate) quantiles: [[u64; 3]; 2],
    /// The one-sided p value of "the candidate is slower".
    pub(crate) p_slower: Option<f64>,
    pub(crate) verdict: Verdict,
}

impl Row {
    /// The candidate's median over the baseline's.
    pub(crate) fn ratio(&self) -> f64 {
        let [base, candidate] = [self.quantiles[0][0], self.quantiles[1][0]];
        candidate.max(1) as f64 / base.max(1) as f64
    }
}

/// The standard normal's upper tail, P(Z > z).
fn upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, to a fractional error below 1.2e-7
/// (Numerical Recipes' Chebyshev fit).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * poly.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

/// The one-sided p value of "`candidate` is stochastically larger than
/// `base`": Mann–Whitney U with ties' average ranks, the normal
/// approximation with the tie correction and a continuity correction.
/// Both slices sorted.
pub(crate) fn mann_whitney_larger(base: &[u64], candidate: &[u64]) -> f64 {
    let (n1, n2) = (base.len() as f64, candidate.len() as f64);
    if base.is_empty() || candidate.is_empty() {
        return 1.0;
    }
    // Merge the sorted runs, ranking ties by their average rank.
    let (mut i, mut j, mut rank) = (0, 0, 1.0_f64);
    let (mut candidate_ranks, mut ties) = (0.0_f64, 0.0_f64);
    while i < base.len() || j < candidate.len() {
        let value = match (base.get(i), candidate.get(j)) {
            (Some(a), Some(b)) => *a.min(b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        let (mut in_base, mut in_candidate) = (0.0, 0.0);
        while base.get(i) == Some(&value) {
            in_base += 1.0;
            i += 1;
        }
        while candidate.get(j) == Some(&value) {
            in_candidate += 1.0;
            j += 1;
        }
        let tied = in_base + in_candidate;
        let average = rank + (tied - 1.0) / 2.0;
        candidate_ranks += average * in_candidate;
        ties += tied * tied * tied - tied;
        rank += tied;
    }
    let u = candidate_ranks - n2 * (n2 + 1.0) / 2.0;
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    upper_tail(z)
}

/// One-sided p value of "the candidate's failure rate is higher".
fn proportion_higher(failed: [u64; 2], count: [usize; 2]) -> f64 {
    let [n1, n2] = [count[0] as f64, count[1] as f64];
    let [p1, p2] = [failed[0] as f64 / n1, failed[1] as f64 / n2];
    let pooled = (failed[0] + failed[1]) as f64 / (n1 + n2);
    let spread = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if spread == 0.0 {
        return if p2 > p1 { 0.0 } else { 1.0 };
    }
    upper_tail((p2 - p1) / spread)
}

/// Whether `candidate` is slower than `base` by the test and the effect size.
fn slower(base: &[u64], candidate: &[u64]) -> (bool, f64) {
    let p = mann_whitney_larger(base, candidate);
    let (base_median, candidate_median) = (percentile(base, 50), percentile(candidate, 50));
    let effect = candidate_median as f64 >= base_median.max(1) as f64 * MIN_RATIO
        && candidate_median.saturating_sub(base_median) >= MIN_NANOS;
    (p < ALPHA && effect, p)
}

/// Compares `baseline` with `candidate`; rows sorted by the size of their
/// regression: regressions first (the largest slow-down first), then
/// consequences, improvements, the rest.
pub(crate) fn compare(baseline: &Run, candidate: &Run) -> Vec<Row> {
    let (base_rows, base_calls) = baseline.samples();
    let (candidate_rows, candidate_calls) = candidate.samples();
    let calls: BTreeSet<(Key, Key)> = base_calls.union(&candidate_calls).cloned().collect();
    let keys: BTreeSet<&Key> = base_rows.keys().chain(candidate_rows.keys()).collect();
    let empty = Samples::default();
    let mut rows = Vec::new();
    let mut own_regressed: BTreeSet<Key> = BTreeSet::new();
    let mut slower_in_total: BTreeSet<Key> = BTreeSet::new();
    for key in keys {
        let runs = [
            base_rows.get(key).unwrap_or(&empty),
            candidate_rows.get(key).unwrap_or(&empty),
        ];
        let count = runs.map(|samples| samples.durations.len());
        let error_rate =
            [0, 1].map(|run| 100.0 * runs[run].failed as f64 / count[run].max(1) as f64);
        let quantiles =
            runs.map(|samples| [50, 95, 99].map(|percent| percentile(&samples.durations, percent)));
        let mut row = Row {
            key: key.clone(),
            count,
            error_rate,
            quantiles,
            p_slower: None,
            verdict: Verdict::NotJudged,
        };
        if count.iter().all(|count| *count >= MIN_CALLS) {
            let (total_slower, p) = slower(&runs[0].durations, &runs[1].durations);
            let (own_slower, _) = slower(&runs[0].own, &runs[1].own);
            let (faster, _) = slower(&runs[1].durations, &runs[0].durations);
            let failing = error_rate[1] - error_rate[0] >= MIN_ERROR_POINTS
                && proportion_higher([runs[0].failed, runs[1].failed], count) < ALPHA;
            row.p_slower = Some(p);
            row.verdict = if failing || (total_slower && own_slower) {
                own_regressed.insert(key.clone());
                Verdict::Regression
            } else if total_slower {
                slower_in_total.insert(key.clone());
                Verdict::Same
            } else if faster {
                Verdict::Improvement
            } else {
                Verdict::Same
            };
        }
        rows.push(row);
    }
    // Slower in total but not in itself: name the regression below it.
    for row in &mut rows {
        if slower_in_total.contains(&row.key) {
            if let Some(cause) = regressed_below(&row.key, &calls, &own_regressed) {
                row.verdict = Verdict::Consequence(cause);
            } else {
                // Slower, its own time not, and nothing below it regressed:
                // its children add up to more, all a little.
                row.verdict = Verdict::Regression;
            }
        }
    }
    let order = |row: &Row| match row.verdict {
        Verdict::Regression => 0,
        Verdict::Consequence(_) => 1,
        Verdict::Improvement => 2,
        Verdict::Same => 3,
        Verdict::NotJudged => 4,
    };
    rows.sort_by(|a, b| {
        order(a)
            .cmp(&order(b))
            .then(b.ratio().total_cmp(&a.ratio()))
            .then(a.key.cmp(&b.key))
    });
    rows
}

/// A regressed row called, directly or not, from `key`.
fn regressed_below(
    key: &Key,
    calls: &BTreeSet<(Key, Key)>,
    regressed: &BTreeSet<Key>,
) -> Option<Key> {
    let mut seen = BTreeSet::new();
    let mut frontier = vec![key.clone()];
    while let Some(at) = frontier.pop() {
        for (parent, child) in calls.range((at.clone(), (Kind::Workflow, String::new()))..) {
            if *parent != at {
                break;
            }
            if !seen.insert(child.clone()) {
                continue;
            }
            if regressed.contains(child) && child != key {
                return Some(child.clone());
            }
            frontier.push(child.clone());
        }
    }
    None
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Regression => "REGRESSION".to_owned(),
        Verdict::Consequence((kind, name)) => {
            format!(
                "slower as a consequence of {} {}",
                kind.label(),
                terminal_safe(name)
            )
        }
        Verdict::Improvement => "faster".to_owned(),
        Verdict::Same => "same".to_owned(),
        Verdict::NotJudged => format!("not judged (under {MIN_CALLS} calls)"),
    }
}

fn change(base: u64, candidate: u64) -> String {
    if base == 0 {
        return String::new();
    }
    let percent = 100.0 * (candidate as f64 - base as f64) / base as f64;
    format!("{percent:+.0}%")
}

/// The comparison as an aligned table.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut table: Vec<Vec<String>> = vec![
        [
            "kind",
            "name",
            "calls",
            "error rate",
            "p50",
            "",
            "p95",
            "",
            "p99",
            "",
            "p (slower)",
            "verdict",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for row in rows {
        let [base, candidate] = row.quantiles;
        let mut cells = vec![
            row.key.0.label().to_owned(),
            terminal_safe(&row.key.1).into_owned(),
            format!("{} → {}", row.count[0], row.count[1]),
            format!("{:.1}% → {:.1}%", row.error_rate[0], row.error_rate[1]),
        ];
        // A row of one run only has no durations in the other.
        let shown = |run: usize, value: u64| {
            if row.count[run] == 0 {
                "—".to_owned()
            } else {
                human(value)
            }
        };
        for quantile in 0..3 {
            cells.push(format!(
                "{} → {}",
                shown(0, base[quantile]),
                shown(1, candidate[quantile])
            ));
            let both = row.count.iter().all(|count| *count > 0);
            cells.push(if both {
                change(base[quantile], candidate[quantile])
            } else {
                String::new()
            });
        }
        cells.push(row.p_slower.map_or_else(String::new, |p| {
            if p < 0.0001 {
                "<0.0001".to_owned()
            } else {
                format!("{p:.4}")
            }
        }));
        cells.push(verdict_text(&row.verdict));
        table.push(cells);
    }
    let mut out = aligned(&table, |column, columns| {
        column < 2 || column == columns - 1
    });
    let regressions = rows
        .iter()
        .filter(|row| row.verdict == Verdict::Regression)
        .count();
    let _ = writeln!(
        out,
        "{regressions} regression{} (Mann-Whitney U, p < {ALPHA}, median at least {:.0}% and {} slower; \
         or error rate {MIN_ERROR_POINTS} points higher)",
        if regressions == 1 { "" } else { "s" },
        (MIN_RATIO - 1.0) * 100.0,
        human(MIN_NANOS),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_u_test_matches_known_values() {
        // Identical samples: no evidence either way.
        let same = [1, 2, 3, 4, 5, 6, 7, 8];
        assert!(mann_whitney_larger(&same, &same) > 0.4);
        // Completely separated, 8 against 8: exact one-sided p = 1/12870;
        // the normal approximation gives about 0.0004.
        let higher = [11, 12, 13, 14, 15, 16, 17, 18];
        let p = mann_whitney_larger(&same, &higher);
        assert!(p < 0.001 && p > 0.0001, "{p}");
        // The other direction is not "larger".
        assert!(mann_whitney_larger(&higher, &same) > 0.99);
    }

    #[test]
    fn erfc_is_accurate() {
        for (x, expected) in [
            (0.0, 1.0),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - expected).abs() < 1e-7, "{x}");
        }
    }
}
