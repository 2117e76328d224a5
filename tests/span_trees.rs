//! Whole span trees, asserted as normalised renderings: names, nesting (so
//! parent span ids), kinds, status, attributes, events and links at once.
//! `#N` is the N-th span shown, `wf#N` the N-th workflow id, `trace#N` the
//! N-th trace id; times and durations are masked (see `SpanTree::render_with`).

use std::future::Future;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanId, Tracer as _, TracerProvider as _};
use workflow_otel::testing::Capture;
use workflow_otel::{
    SuccessStatus, checkpoint, child_workflow, current_workflow, set_attribute,
    set_workflow_attribute, step, workflow,
};

/// Every attribute except code location, which has its own test.
fn render(capture: &Capture) -> String {
    capture.tree().render()
}

/// Only the keys named, for tests about one aspect.
fn render_keys(capture: &Capture, keys: &[&str]) -> String {
    capture.tree().render_with(|key| keys.contains(&key))
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(future)
}

// ---------------------------------------------------------------- nesting

#[workflow]
fn sync_pipeline() -> u32 {
    sync_stage() + 1
}

#[child_workflow]
fn sync_stage() -> u32 {
    sync_task()
}

#[step]
fn sync_task() -> u32 {
    41
}

const THREE_LEVELS: &str = "\
PIPELINE #1 [workflow] Unset
  | observability.current_span_id: #1
  | observability.root_span_id: #1
  | observability.trace_id: trace#1
  | observability.workflow_depth: 0
  | observability.workflow_duration: <duration>
  | observability.workflow_end_time: <time>
  | observability.workflow_id: wf#1
  | observability.workflow_name: \"PIPELINE\"
  | observability.workflow_start_time: <time>
  | observability.workflow_status: \"completed\"
  | relationship.hierarchy_path: \"PIPELINE\"
  | relationship.nesting_level: 0
  | relationship.type: \"root_workflow\"
  | workflow.correlation_id: wf#1
  STAGE #2 [workflow] Unset
    | observability.current_span_id: #2
    | observability.root_span_id: #1
    | observability.trace_id: trace#1
    | observability.workflow_depth: 1
    | observability.workflow_duration: <duration>
    | observability.workflow_end_time: <time>
    | observability.workflow_id: wf#2
    | observability.workflow_name: \"STAGE\"
    | observability.workflow_start_time: <time>
    | observability.workflow_status: \"completed\"
    | relationship.hierarchy_path: \"PIPELINE/STAGE\"
    | relationship.nesting_level: 1
    | relationship.parent_workflow_id: wf#1
    | relationship.parent_workflow_name: \"PIPELINE\"
    | relationship.type: \"child_workflow\"
    | workflow.causation_id: wf#1
    | workflow.correlation_id: wf#1
    | link #1 {link.type: \"parent_workflow\"}
    TASK #3 [step] Unset
      | observability.workflow_id: wf#2
      | observability.workflow_name: \"STAGE\"
      | step.duration: <duration>
      | step.name: \"TASK\"
      | step.status: \"completed\"
";

fn expected_three_levels(pipeline: &str, stage: &str, task: &str) -> String {
    THREE_LEVELS
        .replace("PIPELINE", pipeline)
        .replace("STAGE", stage)
        .replace("TASK", task)
}

#[test]
fn three_sync_levels_nest_with_full_lineage() {
    let capture = Capture::new();
    assert_eq!(capture.run(sync_pipeline), 42);
    assert_eq!(
        render(&capture),
        expected_three_levels("sync_pipeline", "sync_stage", "sync_task")
    );
}

#[workflow]
async fn async_pipeline() -> u32 {
    async_stage().await + 1
}

#[child_workflow]
async fn async_stage() -> u32 {
    tokio::task::yield_now().await;
    async_task().await
}

#[step]
async fn async_task() -> u32 {
    tokio::task::yield_now().await;
    41
}

#[test]
fn three_async_levels_nest_with_full_lineage() {
    let capture = Capture::new();
    assert_eq!(block_on(capture.scope(async_pipeline())), 42);
    assert_eq!(
        render(&capture),
        expected_three_levels("async_pipeline", "async_stage", "async_task")
    );
}

#[test]
fn ids_in_attributes_are_the_real_span_and_workflow_ids() {
    let capture = Capture::new();
    capture.run(sync_pipeline);
    let tree = capture.tree();
    let root = &tree.roots()[0];
    let stage = &root.children[0];
    let task = &stage.children[0];
    let text = |node: &workflow_otel::SpanNode, key: &str| {
        node.attribute(key).unwrap().as_str().into_owned()
    };
    assert_eq!(
        text(root, "observability.trace_id"),
        root.span.span_context.trace_id().to_string()
    );
    assert_eq!(
        text(stage, "observability.current_span_id"),
        stage.span.span_context.span_id().to_string()
    );
    assert_eq!(
        text(stage, "observability.root_span_id"),
        root.span.span_context.span_id().to_string()
    );
    assert_eq!(stage.span.parent_span_id, root.span.span_context.span_id());
    assert_eq!(task.span.parent_span_id, stage.span.span_context.span_id());
    assert_eq!(root.span.parent_span_id, SpanId::INVALID);
    assert_eq!(
        text(task, "observability.workflow_id"),
        text(stage, "observability.workflow_id")
    );
    let id = text(root, "observability.workflow_id");
    let parsed = id.parse::<uuid_text::Uuid>().expect("a UUID");
    assert_eq!(parsed.version, 7, "{id}");
}

/// Just enough of RFC 9562 to check the version nibble without another dependency.
mod uuid_text {
    pub(crate) struct Uuid {
        pub(crate) version: u8,
    }
    impl std::str::FromStr for Uuid {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let groups: Vec<&str> = s.split('-').collect();
            let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            if lengths != [8, 4, 4, 4, 12] || !s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
            {
                return Err(format!("not a UUID: {s}"));
            }
            Ok(Uuid {
                version: u8::from_str_radix(&groups[2][..1], 16).unwrap(),
            })
        }
    }
}

#[workflow]
fn outer_entry() {
    inner_entry();
}

#[workflow]
fn inner_entry() {}

#[test]
fn a_workflow_inside_a_workflow_nests_as_a_child_without_a_link() {
    let capture = Capture::new();
    capture.run(outer_entry);
    assert_eq!(
        render_keys(
            &capture,
            &[
                "relationship.type",
                "relationship.hierarchy_path",
                "observability.workflow_depth"
            ]
        ),
        "\
outer_entry #1 [workflow] Unset
  | observability.workflow_depth: 0
  | relationship.hierarchy_path: \"outer_entry\"
  | relationship.type: \"root_workflow\"
  inner_entry #2 [workflow] Unset
    | observability.workflow_depth: 1
    | relationship.hierarchy_path: \"outer_entry/inner_entry\"
    | relationship.type: \"child_workflow\"
"
    );
}

#[step]
fn lonely_step() {}

#[child_workflow]
fn orphan_child() {
    lonely_step();
}

#[test]
fn a_step_outside_any_workflow_records_a_plain_step_span() {
    let capture = Capture::new();
    capture.run(lonely_step);
    assert_eq!(
        render(&capture),
        "\
lonely_step #1 [step] Unset
  | step.duration: <duration>
  | step.name: \"lonely_step\"
  | step.status: \"completed\"
"
    );
}

#[test]
fn a_child_workflow_with_no_parent_starts_a_root_workflow() {
    let capture = Capture::new();
    capture.run(orphan_child);
    assert_eq!(
        render_keys(
            &capture,
            &[
                "relationship.type",
                "observability.workflow_depth",
                "observability.workflow_name"
            ]
        ),
        "\
orphan_child #1 [workflow] Unset
  | observability.workflow_depth: 0
  | observability.workflow_name: \"orphan_child\"
  | relationship.type: \"root_workflow\"
  lonely_step #2 [step] Unset
    | observability.workflow_name: \"orphan_child\"
"
    );
}

// ---------------------------------------------------------------- concurrency

#[workflow]
async fn fan_out() -> u32 {
    let (a, b, c, d, e) = tokio::join!(part(1), part(2), part(3), part(4), part(5));
    a + b + c + d + e
}

#[step(args(n))]
async fn part(n: u32) -> u32 {
    // Yield so that the five branches really interleave.
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
    n
}

#[test]
fn five_parallel_steps_are_each_parented_to_the_workflow() {
    let capture = Capture::new();
    assert_eq!(block_on(capture.scope(fan_out())), 15);
    let mut expected = String::from("fan_out #1 [workflow] Unset\n");
    for n in 1..=5 {
        expected.push_str(&format!(
            "  part #{} [step] Unset\n    | arg.n: {n}\n    | step.status: \"completed\"\n",
            n + 1
        ));
    }
    // Branches start in join order; the tree orders siblings by start time.
    assert_eq!(render_keys(&capture, &["arg.n", "step.status"]), expected);
    let ends: Vec<String> = capture.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        ends.last().map(String::as_str),
        Some("fan_out"),
        "the workflow ends last: {ends:?}"
    );
}

#[workflow]
async fn spawns_a_task() -> u32 {
    workflow_otel::spawn(async_task()).await.expect("task")
}

#[workflow]
async fn spawns_without_the_helper() -> u32 {
    tokio::spawn(async_task()).await.expect("task")
}

#[test]
fn a_step_in_a_spawned_task_nests_through_the_helper() {
    let capture = Capture::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(capture.scope(spawns_a_task())), 41);
    assert_eq!(
        render_keys(&capture, &["observability.workflow_name"]),
        "\
spawns_a_task #1 [workflow] Unset
  | observability.workflow_name: \"spawns_a_task\"
  async_task #2 [step] Unset
    | observability.workflow_name: \"spawns_a_task\"
"
    );
}

#[test]
fn a_plain_tokio_spawn_loses_the_context_which_is_why_the_helper_exists() {
    let capture = Capture::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // The task runs outside the capture's scope, so its step goes to the global
    // (no-op) provider and only the workflow is captured.
    assert_eq!(
        runtime.block_on(capture.scope(spawns_without_the_helper())),
        41
    );
    assert_eq!(
        render_keys(&capture, &[]),
        "spawns_without_the_helper #1 [workflow] Unset\n"
    );
}

#[workflow]
fn spawns_threads() -> u32 {
    let handle = workflow_otel::spawn_thread(sync_task);
    let scoped = std::thread::scope(|scope| {
        scope
            .spawn(workflow_otel::in_current_context(sync_task))
            .join()
            .unwrap()
    });
    handle.join().unwrap() + scoped
}

#[test]
fn steps_on_other_threads_nest_through_the_helpers() {
    let capture = Capture::new();
    assert_eq!(capture.run(spawns_threads), 82);
    assert_eq!(
        render_keys(&capture, &["observability.workflow_name"]),
        "\
spawns_threads #1 [workflow] Unset
  | observability.workflow_name: \"spawns_threads\"
  sync_task #2 [step] Unset
    | observability.workflow_name: \"spawns_threads\"
  sync_task #3 [step] Unset
    | observability.workflow_name: \"spawns_threads\"
"
    );
}

// ---------------------------------------------------------------- outcomes

mod errors {
    use std::fmt;

    #[derive(Debug)]
    pub(crate) struct Declined {
        pub(crate) code: u16,
    }

    impl fmt::Display for Declined {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "card declined ({})", self.code)
        }
    }

    impl std::error::Error for Declined {}

    /// The alias style of `io::Result` and `anyhow::Result`.
    pub(crate) type Result<T> = std::result::Result<T, Declined>;

    /// An error type with `Debug` only.
    #[derive(Debug)]
    pub(crate) struct Opaque(#[expect(dead_code, reason = "read through Debug")] pub(crate) u8);
}

#[step]
fn charge_alias() -> errors::Result<u32> {
    Err(errors::Declined { code: 51 })
}

#[step]
fn read_config() -> std::io::Result<String> {
    std::fs::read_to_string("/nonexistent/workflow-otel/config.toml")
}

#[step]
fn debug_only_error() -> Result<(), errors::Opaque> {
    Err(errors::Opaque(7))
}

#[step(err(Debug))]
fn debug_formatted_error() -> errors::Result<()> {
    Err(errors::Declined { code: 5 })
}

#[workflow]
fn failing_workflow() -> errors::Result<u32> {
    let charged = charge_alias()?;
    Ok(charged)
}

#[test]
fn err_through_an_aliased_result_fails_the_span_with_semantic_convention_fields() {
    let capture = Capture::new();
    assert!(capture.run(failing_workflow).is_err());
    assert_eq!(
        render_keys(&capture, &["error.type", "step.status", "observability.workflow_status"]),
        "\
failing_workflow #1 [workflow] Error(\"card declined (51)\")
  | error.type: \"span_trees::errors::Declined\"
  | observability.workflow_status: \"failed\"
  | event exception {exception.message: \"card declined (51)\", exception.type: \"span_trees::errors::Declined\"}
  charge_alias #2 [step] Error(\"card declined (51)\")
    | error.type: \"span_trees::errors::Declined\"
    | step.status: \"failed\"
    | event exception {exception.message: \"card declined (51)\", exception.type: \"span_trees::errors::Declined\"}
"
    );
}

#[test]
fn io_result_and_debug_only_errors_are_recognised() {
    let capture = Capture::new();
    capture.run(|| {
        read_config().unwrap_err();
        debug_only_error().unwrap_err();
        debug_formatted_error().unwrap_err();
    });
    assert_eq!(
        render_keys(&capture, &["error.type"]),
        "\
read_config #1 [step] Error(\"No such file or directory (os error 2)\")
  | error.type: \"std::io::error::Error\"
  | event exception {exception.message: \"No such file or directory (os error 2)\", exception.type: \"std::io::error::Error\"}
debug_only_error #2 [step] Error(\"Opaque(7)\")
  | error.type: \"span_trees::errors::Opaque\"
  | event exception {exception.message: \"Opaque(7)\", exception.type: \"span_trees::errors::Opaque\"}
debug_formatted_error #3 [step] Error(\"Declined { code: 5 }\")
  | error.type: \"span_trees::errors::Declined\"
  | event exception {exception.message: \"Declined { code: 5 }\", exception.type: \"span_trees::errors::Declined\"}
"
    );
}

#[test]
fn success_can_be_marked_ok() {
    let capture = Capture::new().success_status(SuccessStatus::Ok);
    capture.run(|| {
        sync_task();
        charge_alias().unwrap_err();
    });
    assert_eq!(
        render_keys(&capture, &[]),
        "\
sync_task #1 [step] Ok
charge_alias #2 [step] Error(\"card declined (51)\")
  | event exception {exception.message: \"card declined (51)\", exception.type: \"span_trees::errors::Declined\"}
"
    );
}

#[workflow]
fn panicking_workflow() -> u32 {
    panicking_step(3)
}

#[step]
fn panicking_step(n: u32) -> u32 {
    if n == 3 {
        panic!("three is not allowed");
    }
    n
}

#[test]
fn a_panic_fails_every_span_it_crosses_and_keeps_unwinding() {
    let capture = Capture::new();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        capture.run(panicking_workflow)
    }));
    let payload = unwound.expect_err("the panic must reach the caller");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"three is not allowed")
    );
    assert_eq!(
        render_keys(
            &capture,
            &["error.type", "step.status", "observability.workflow_status"]
        ),
        "\
panicking_workflow #1 [workflow] Error(\"three is not allowed\")
  | error.type: \"panic\"
  | observability.workflow_status: \"failed\"
  | event exception {exception.message: \"three is not allowed\", exception.type: \"panic\"}
  panicking_step #2 [step] Error(\"three is not allowed\")
    | error.type: \"panic\"
    | step.status: \"failed\"
    | event exception {exception.message: \"three is not allowed\", exception.type: \"panic\"}
"
    );
}

#[step]
async fn async_panic() {
    tokio::task::yield_now().await;
    panic!("{} went wrong", "async step");
}

#[test]
fn a_panic_in_an_async_step_fails_its_span() {
    let capture = Capture::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let task = runtime.block_on(async { tokio::spawn(capture.scope(async_panic())).await });
    assert!(task.expect_err("panicked").is_panic());
    assert_eq!(
        render_keys(&capture, &["error.type", "step.status"]),
        "\
async_panic #1 [step] Error(\"async step went wrong\")
  | error.type: \"panic\"
  | step.status: \"failed\"
  | event exception {exception.message: \"async step went wrong\", exception.type: \"panic\"}
"
    );
}

#[workflow]
async fn slow_workflow() {
    never_finishes().await;
}

#[step]
async fn never_finishes() {
    std::future::pending::<()>().await;
}

#[test]
fn a_future_dropped_by_a_timeout_ends_its_spans_as_cancelled() {
    let capture = Capture::new();
    let outcome =
        block_on(capture.scope(async {
            tokio::time::timeout(Duration::from_millis(1), slow_workflow()).await
        }));
    assert!(
        outcome.is_err(),
        "pending() never completes, so the timeout fires"
    );
    assert_eq!(
        render_keys(
            &capture,
            &["step.status", "observability.workflow_status", "error.type"]
        ),
        "\
slow_workflow #1 [workflow] Unset
  | observability.workflow_status: \"cancelled\"
  never_finishes #2 [step] Unset
    | step.status: \"cancelled\"
"
    );
    let spans = capture.spans();
    assert_eq!(
        spans[0].name, "never_finishes",
        "the inner span ends before its parent"
    );
}

// ---------------------------------------------------------------- function shapes

#[derive(Debug, Clone)]
struct Ledger {
    balance: i64,
}

impl Ledger {
    #[step(ret)]
    fn balance(&self) -> i64 {
        self.balance
    }

    #[step(args(amount))]
    fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }

    #[step(args(self))]
    fn close(self) -> i64 {
        self.balance
    }

    #[step]
    async fn audit<'a>(&'a self, label: &'a str) -> &'a str {
        tokio::task::yield_now().await;
        label
    }
}

#[step(args(items), ret)]
fn largest<T>(items: &[T]) -> Option<&T>
where
    T: Ord + std::fmt::Debug,
{
    items.iter().max()
}

#[step]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

#[step]
async fn delayed_evens(limit: u32) -> impl Iterator<Item = u32> {
    tokio::task::yield_now().await;
    (0..limit).filter(|n| n % 2 == 0)
}

trait Store {
    async fn load(&self, key: u32) -> Result<String, String>;
}

struct MemoryStore;

impl Store for MemoryStore {
    #[step(args(key))]
    async fn load(&self, key: u32) -> Result<String, String> {
        if key == 0 {
            Err("no key 0".to_owned())
        } else {
            Ok(format!("value-{key}"))
        }
    }
}

trait Greeter {
    #[step]
    fn greet(&self) -> String {
        "hello".to_owned()
    }
}

impl Greeter for MemoryStore {}

#[workflow]
async fn shapes() -> i64 {
    let mut ledger = Ledger { balance: 10 };
    ledger.deposit(5);
    let balance = ledger.balance();
    assert_eq!(ledger.audit("eod").await, "eod");
    assert_eq!(largest(&[3, 9, 4]), Some(&9));
    assert_eq!(evens(5).collect::<Vec<_>>(), [0, 2, 4]);
    assert_eq!(delayed_evens(3).await.count(), 2);
    assert_eq!(MemoryStore.load(4).await.as_deref(), Ok("value-4"));
    assert!(MemoryStore.load(0).await.is_err());
    assert_eq!(MemoryStore.greet(), "hello");
    balance + ledger.close()
}

#[test]
fn methods_generics_impl_trait_and_trait_methods_are_instrumented() {
    let capture = Capture::new();
    assert_eq!(block_on(capture.scope(shapes())), 30);
    assert_eq!(
        capture
            .tree()
            .render_with(|key| key.starts_with("arg.") || key == "return.value"),
        "\
shapes #1 [workflow] Unset
  deposit #2 [step] Unset
    | arg.amount: 5
  balance #3 [step] Unset
    | return.value: \"15\"
  audit #4 [step] Unset
  largest #5 [step] Unset
    | arg.items: \"[3, 9, 4]\"
    | return.value: \"Some(9)\"
  evens #6 [step] Unset
  delayed_evens #7 [step] Unset
  load #8 [step] Unset
    | arg.key: 4
  load #9 [step] Error(\"no key 0\")
    | arg.key: 0
    | event exception {exception.message: \"no key 0\", exception.type: \"_OTHER\"}
  greet #10 [step] Unset
  close #11 [step] Unset
    | arg.self: \"Ledger { balance: 15 }\"
"
    );
}

// ---------------------------------------------------------------- options

#[derive(Debug)]
struct Customer {
    id: u64,
    tier: &'static str,
}

#[workflow(
    name = "checkout.v2",
    args(customer, note),
    fields(customer.id = customer.id, "customer.tier" = %customer.tier, raw = ?customer.tier, big = u64::MAX, ratio = 0.5, vip = true),
    ret(Display),
)]
fn checkout(customer: &Customer, note: &str) -> String {
    format!("{}:{note}", customer.id)
}

#[test]
fn options_name_args_fields_and_ret_are_recorded() {
    let capture = Capture::new();
    let customer = Customer {
        id: 9,
        tier: "gold",
    };
    assert_eq!(capture.run(|| checkout(&customer, "gift")), "9:gift");
    assert_eq!(
        capture.tree().render_with(|key| !key.contains('_')
            && !key.starts_with("code.")
            && !key.starts_with("relationship.")
            && !key.starts_with("observability.")),
        "\
checkout.v2 #1 [workflow] Unset
  | arg.customer: \"Customer { id: 9, tier: \\\"gold\\\" }\"
  | arg.note: \"gift\"
  | big: \"18446744073709551615\"
  | customer.id: 9
  | customer.tier: \"gold\"
  | ratio: 0.5
  | raw: \"\\\"gold\\\"\"
  | return.value: \"9:gift\"
  | vip: true
"
    );
}

#[step(args(sizes, names, weights, flags, ids), kind = client)]
fn upload(sizes: &[u32], names: Vec<&str>, weights: [f64; 2], flags: &Vec<bool>, ids: Vec<u64>) {}

#[workflow(kind = server)]
fn serve() {
    upload(
        &[3, 3, 3],
        vec!["a", "b"],
        [0.5, 1.5],
        &vec![true, false],
        vec![1, u64::MAX],
    );
}

#[test]
fn slices_of_primitives_are_arrays_and_span_kinds_are_chosen() {
    use opentelemetry::trace::SpanKind;
    use opentelemetry::{Array, StringValue, Value};
    let capture = Capture::new();
    capture.run(serve);
    let tree = capture.tree();
    let step = tree.find("upload").unwrap();
    let strings = |items: &[&str]| {
        Value::Array(Array::String(
            items
                .iter()
                .map(|item| StringValue::from(item.to_string()))
                .collect(),
        ))
    };
    assert_eq!(
        step.attribute("arg.sizes"),
        Some(&Value::Array(Array::I64(vec![3, 3, 3])))
    );
    assert_eq!(step.attribute("arg.names"), Some(&strings(&["a", "b"])));
    assert_eq!(
        step.attribute("arg.weights"),
        Some(&Value::Array(Array::F64(vec![0.5, 1.5])))
    );
    assert_eq!(
        step.attribute("arg.flags"),
        Some(&Value::Array(Array::Bool(vec![true, false])))
    );
    // A value past i64 keeps the whole array exact, as text.
    assert_eq!(
        step.attribute("arg.ids"),
        Some(&strings(&["1", "18446744073709551615"]))
    );
    assert_eq!(step.span.span_kind, SpanKind::Client);
    assert_eq!(tree.find("serve").unwrap().span.span_kind, SpanKind::Server);
}

#[test]
fn code_location_points_at_the_fn_line() {
    #[step]
    fn located() {}
    let line = line!() - 1;
    let capture = Capture::new();
    capture.run(located);
    let span = &capture.spans()[0];
    let find = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        find("code.function.name").as_deref(),
        Some("span_trees::located")
    );
    assert_eq!(
        find("code.file.path").as_deref(),
        Some("tests/span_trees.rs")
    );
    assert_eq!(find("code.line.number"), Some(line.to_string()));
}

// ---------------------------------------------------------------- runtime API

#[workflow]
fn annotated() {
    checkpoint("loaded");
    set_workflow_attribute(KeyValue::new("rows", 120));
    annotated_step();
}

#[step]
fn annotated_step() {
    set_attribute(KeyValue::new("cache.hit", true));
    set_workflow_attribute(KeyValue::new("from_step", "yes"));
    let workflow = current_workflow().expect("inside annotated");
    assert_eq!(workflow.name(), "annotated");
    assert_eq!(workflow.depth(), 0);
    assert!(workflow.parent().is_none());
}

#[test]
fn checkpoints_and_attributes_land_on_the_right_spans() {
    let capture = Capture::new();
    capture.run(annotated);
    assert_eq!(
        current_workflow().map(|w| w.id()),
        None,
        "nothing leaks after the call"
    );
    assert_eq!(
        capture
            .tree()
            .render_with(|key| ["rows", "from_step", "cache.hit"].contains(&key)),
        "\
annotated #1 [workflow] Unset
  | from_step: \"yes\"
  | rows: 120
  | event loaded {checkpoint.elapsed: <duration>}
  annotated_step #2 [step] Unset
    | cache.hit: true
"
    );
}

#[step]
fn calls_a_library() {
    // What a library does with the OpenTelemetry API, from its own tracer.
    let tracer = opentelemetry::global::tracer_provider().tracer("some-library");
    drop(tracer);
}

#[test]
fn spans_opened_through_the_opentelemetry_api_nest_inside_steps() {
    let capture = Capture::new();
    #[step]
    fn query_database(capture: &Capture) {
        let tracer = capture.provider().tracer("sqlx");
        let mut span = tracer.start("SELECT orders");
        span.set_attribute(KeyValue::new("db.system.name", "postgresql"));
        span.end();
    }
    #[workflow]
    fn report(capture: &Capture) {
        query_database(capture);
        calls_a_library();
    }
    capture.run(|| report(&capture));
    assert_eq!(
        capture.tree().render_with(|key| key == "db.system.name"),
        "\
report #1 [workflow] Unset
  query_database #2 [step] Unset
    SELECT orders #3 [span scope=sqlx] Unset
      | db.system.name: \"postgresql\"
  calls_a_library #4 [step] Unset
"
    );
}

#[test]
fn other_libraries_spans_inside_a_workflow_are_stamped_with_it() {
    let capture = Capture::new();
    #[step]
    fn lookup(capture: &Capture) {
        capture.provider().tracer("redis").start("GET").end();
    }
    #[workflow]
    fn cached_report(capture: &Capture) {
        lookup(capture);
        stamped_child(capture);
    }
    #[child_workflow]
    fn stamped_child(capture: &Capture) {
        capture.provider().tracer("redis").start("SET").end();
    }
    capture.run(|| cached_report(&capture));
    // Outside any workflow nothing is stamped.
    capture.run(|| capture.provider().tracer("redis").start("PING").end());
    let stamped = [
        "observability.workflow_name",
        "observability.workflow_id",
        "observability.workflow_depth",
        "observability.trace_id",
        "observability.root_span_id",
        "relationship.parent_workflow_name",
        "relationship.hierarchy_path",
        "relationship.nesting_level",
    ];
    assert_eq!(
        capture.tree().render_with(
            |key| stamped.contains(&key) && !key.starts_with("observability.workflow_depth")
        ),
        "\
cached_report #1 [workflow] Unset
  | observability.root_span_id: #1
  | observability.trace_id: trace#1
  | observability.workflow_id: wf#1
  | observability.workflow_name: \"cached_report\"
  | relationship.hierarchy_path: \"cached_report\"
  | relationship.nesting_level: 0
  lookup #2 [step] Unset
    | observability.workflow_id: wf#1
    | observability.workflow_name: \"cached_report\"
    GET #3 [span scope=redis] Unset
      | observability.root_span_id: #1
      | observability.trace_id: trace#1
      | observability.workflow_id: wf#1
      | observability.workflow_name: \"cached_report\"
      | relationship.hierarchy_path: \"cached_report\"
      | relationship.nesting_level: 0
      | relationship.parent_workflow_name: \"cached_report\"
  stamped_child #4 [workflow] Unset
    | observability.root_span_id: #1
    | observability.trace_id: trace#1
    | observability.workflow_id: wf#2
    | observability.workflow_name: \"stamped_child\"
    | relationship.hierarchy_path: \"cached_report/stamped_child\"
    | relationship.nesting_level: 1
    | relationship.parent_workflow_name: \"cached_report\"
    | link #1 {link.type: \"parent_workflow\"}
    SET #5 [span scope=redis] Unset
      | observability.root_span_id: #1
      | observability.trace_id: trace#1
      | observability.workflow_id: wf#2
      | observability.workflow_name: \"stamped_child\"
      | relationship.hierarchy_path: \"cached_report/stamped_child\"
      | relationship.nesting_level: 1
      | relationship.parent_workflow_name: \"stamped_child\"
PING #6 [span scope=redis] Unset
"
    );
}

#[step]
fn calls_a_tracing_library() {
    // What a library instrumented with `tracing` does inside our step.
    let request = tracing::info_span!("http.request", http.request.method = "GET");
    let _entered = request.enter();
    let inner = tracing::info_span!("dns.lookup");
    drop(inner.enter());
}

#[workflow]
fn uses_tracing() {
    calls_a_tracing_library();
}

#[test]
fn tracing_spans_nest_inside_steps_through_tracing_opentelemetry() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let capture = Capture::new();
    let layer = tracing_opentelemetry::layer().with_tracer(capture.provider().tracer("tracing"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || capture.run(uses_tracing));
    assert_eq!(
        capture.tree().render_with(
            |key| key == "http.request.method" || key == "relationship.parent_workflow_name"
        ),
        "\
uses_tracing #1 [workflow] Unset
  calls_a_tracing_library #2 [step] Unset
    http.request #3 [span scope=tracing] Unset
      | http.request.method: \"GET\"
      | relationship.parent_workflow_name: \"uses_tracing\"
      dns.lookup #4 [span scope=tracing] Unset
        | relationship.parent_workflow_name: \"uses_tracing\"
"
    );
}

#[workflow]
fn unsampled_lineage() -> (u32, String) {
    unsampled_child()
}

#[child_workflow]
fn unsampled_child() -> (u32, String) {
    sync_task();
    let workflow = current_workflow().expect("lineage is kept when unsampled");
    (workflow.depth(), workflow.hierarchy_path().to_owned())
}

#[test]
fn an_unsampled_trace_records_nothing_and_keeps_its_lineage() {
    let capture = Capture::new().sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff);
    assert_eq!(
        capture.run(unsampled_lineage),
        (1, "unsampled_lineage/unsampled_child".to_owned())
    );
    assert!(capture.run(failing_workflow).is_err());
    assert_eq!(capture.spans().len(), 0);
    assert_eq!(capture.pipeline().dropped_spans(), 0);
}

#[test]
fn a_sampled_trace_keeps_every_span_whatever_the_ratio() {
    // One decision per trace: with a ratio sampler each trace is all or nothing.
    let capture = Capture::new().sampler(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(0.5));
    for _ in 0..200 {
        capture.run(sync_pipeline);
    }
    let tree = capture.tree();
    let traces = tree.roots().len();
    assert!(
        traces > 0 && traces < 200,
        "about half the traces: {traces}"
    );
    for root in tree.roots() {
        assert_eq!(root.span.name, "sync_pipeline");
        assert_eq!(root.children[0].children[0].span.name, "sync_task");
    }
    assert_eq!(capture.spans().len(), traces * 3);
}

#[test]
fn without_instrumentation_nothing_is_recorded_and_lineage_still_works() {
    assert_eq!(
        unsampled_lineage(),
        (1, "unsampled_lineage/unsampled_child".to_owned())
    );
}

#[test]
fn console_tree_shows_nesting_status_and_cancellation() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let output = Shared::default();
    let pipeline =
        workflow_otel::Pipeline::new(workflow_otel::ConsoleExporter::with_writer(output.clone()));
    let instrumentation = workflow_otel::Instrumentation::new(&pipeline);
    instrumentation.run(|| {
        sync_pipeline();
        failing_workflow().unwrap_err();
    });
    let timed_out =
        block_on(instrumentation.scope(async {
            tokio::time::timeout(Duration::from_millis(1), slow_workflow()).await
        }));
    assert!(timed_out.is_err());
    pipeline.force_flush().unwrap();
    let text = String::from_utf8(output.0.lock().unwrap().clone()).unwrap();
    // Durations and trace ids differ per run: mask them, keep everything else.
    let masked: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("trace ") {
                assert_eq!(line.len(), "trace ".len() + 32, "{line}");
                return "trace <id>".to_owned();
            }
            // The duration is the bracket just before the status mark.
            let close = line.rfind("] ").expect("a duration");
            let open = line[..close].rfind('[').expect("a duration");
            format!("{}[t]{}", &line[..open], &line[close + 1..])
        })
        .collect();
    assert_eq!(
        masked.join("\n"),
        "\
trace <id>
workflow sync_pipeline [t] ✓
└── workflow sync_stage [t] ✓
    └── step sync_task [t] ✓
trace <id>
workflow failing_workflow [t] ✗ card declined (51)
└── step charge_alias [t] ✗ card declined (51)
trace <id>
workflow slow_workflow [t] ⊘ cancelled
└── step never_finishes [t] ⊘ cancelled"
    );
}

#[step]
async fn polled_once() -> u32 {
    7
}

/// A completed step's future, polled again, panics as an `async fn`'s does,
/// rather than touching its dropped body.
#[test]
fn a_completed_async_step_polled_again_panics_like_an_async_fn() {
    use std::future::Future;
    use std::task::{Context as TaskContext, Poll, Waker};
    let capture = Capture::new();
    capture.run(|| {
        let mut future = Box::pin(polled_once());
        let mut task = TaskContext::from_waker(Waker::noop());
        assert_eq!(future.as_mut().poll(&mut task), Poll::Ready(7));
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = future.as_mut().poll(&mut task);
        }));
        assert!(again.is_err());
    });
    assert_eq!(capture.spans().len(), 1);
}

#[step(
    args(order),
    fields(region = "eu-west", retries = 3, ratio = 0.5, dry_run = true)
)]
fn ship(order: u64) {
    workflow_otel::set_attribute(KeyValue::new("carrier", "ups"));
    let _ = order;
}

/// Literal fields are kept in the function's site, not recorded per call:
/// they come out typed, after the arguments and before what the body set.
#[test]
fn literal_fields_keep_their_types_and_place() {
    let capture = Capture::new();
    capture.run(|| ship(7));
    let spans = capture.spans();
    let attributes: Vec<(String, opentelemetry::Value)> = spans[0]
        .attributes
        .iter()
        .filter(|attribute| {
            !attribute.key.as_str().starts_with("code.")
                && !attribute.key.as_str().starts_with("step.")
        })
        .map(|attribute| (attribute.key.to_string(), attribute.value.clone()))
        .collect();
    assert_eq!(
        attributes,
        vec![
            ("arg.order".to_owned(), opentelemetry::Value::I64(7)),
            ("region".to_owned(), "eu-west".into()),
            ("retries".to_owned(), opentelemetry::Value::I64(3)),
            ("ratio".to_owned(), opentelemetry::Value::F64(0.5)),
            ("dry_run".to_owned(), opentelemetry::Value::Bool(true)),
            ("carrier".to_owned(), "ups".into()),
        ]
    );
}
