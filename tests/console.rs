//! The console exporter, the default one, must never take the program down:
//! any tree shape prints (deep recursion, huge fan-out), in bounded width,
//! one line per span.

use std::io::Write;
use std::sync::{Arc, Mutex};

use workflow_otel::{
    ConsoleExporter, Instrumentation, MAX_CONSOLE_DEPTH, Pipeline, PipelineConfig, step, workflow,
};

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A console pipeline with room for `spans` spans.
fn console(screen: &Screen, spans: usize) -> Pipeline {
    Pipeline::with_config(
        ConsoleExporter::with_writer(screen.clone()).max_pending_spans(spans),
        PipelineConfig {
            max_queue_size: spans,
            ..PipelineConfig::default()
        },
        None,
    )
}

#[step]
fn descend(levels: u32) -> u32 {
    if levels == 0 {
        0
    } else {
        1 + descend(levels - 1)
    }
}

#[workflow]
fn recursive(levels: u32) -> u32 {
    descend(levels)
}

#[test]
fn a_tree_ten_thousand_levels_deep_prints_in_bounded_width() {
    const LEVELS: u32 = 10_000;
    let screen = Screen::default();
    let pipeline = console(&screen, 20_000);
    let instrumentation = Instrumentation::new(&pipeline);
    // The program's own recursion needs the stack, not the exporter's.
    let depth = std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || instrumentation.run(|| recursive(LEVELS)))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(depth, LEVELS);
    // The export thread rendered and dropped the whole tree and lives on.
    pipeline.shutdown().unwrap();
    let spans = u64::from(LEVELS) + 2;
    assert_eq!(
        (pipeline.exported_spans(), pipeline.dropped_spans()),
        (spans, 0)
    );

    let text = screen.text();
    let lines: Vec<&str> = text.lines().collect();
    // "trace …", the workflow, the steps down to the depth limit, one summary.
    assert_eq!(lines.len(), 1 + (MAX_CONSOLE_DEPTH + 1) + 1, "{text}");
    assert!(lines[0].starts_with("trace "));
    assert!(lines[1].starts_with("workflow recursive ["));
    assert!(
        lines[2].starts_with("└── step descend(") || lines[2].starts_with("└── step descend [")
    );
    let shown_steps = MAX_CONSOLE_DEPTH;
    let hidden = spans as usize - 1 - shown_steps;
    let summary = lines.last().unwrap();
    assert_eq!(
        summary.trim_start(),
        format!(
            "└── … {hidden} more spans deeper than {MAX_CONSOLE_DEPTH} levels (0 failed) not shown"
        ),
    );
    // Indentation stops growing at the limit: 4 columns a level.
    assert!(summary.chars().count() < 4 * (MAX_CONSOLE_DEPTH + 1) + 80);
}

#[step]
fn leaf() {}

#[workflow]
fn fan_out(count: u32) {
    for _ in 0..count {
        leaf();
    }
}

#[test]
fn a_hundred_thousand_siblings_print_one_line_each() {
    const SIBLINGS: u32 = 100_000;
    let screen = Screen::default();
    let pipeline = console(&screen, 200_000);
    Instrumentation::new(&pipeline).run(|| fan_out(SIBLINGS));
    pipeline.shutdown().unwrap();
    let spans = u64::from(SIBLINGS) + 1;
    assert_eq!(
        (pipeline.exported_spans(), pipeline.dropped_spans()),
        (spans, 0)
    );
    let text = screen.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + SIBLINGS as usize);
    assert!(lines[1].starts_with("workflow fan_out"));
    assert!(
        lines[2..lines.len() - 1]
            .iter()
            .all(|line| line.starts_with("├── step leaf ["))
    );
    assert!(lines.last().unwrap().starts_with("└── step leaf ["));
}

#[step]
fn load_config() -> Result<(), String> {
    Err(
        "cannot load config\n\nCaused by:\n    0: reading /etc/app.toml\n    1: permission denied"
            .to_owned(),
    )
}

#[workflow]
fn start_service() -> Result<(), String> {
    load_config()
}

#[test]
fn a_multi_line_error_keeps_one_line_per_span() {
    let screen = Screen::default();
    let pipeline = console(&screen, 100);
    let _ = Instrumentation::new(&pipeline).run(start_service);
    pipeline.shutdown().unwrap();
    let text = screen.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].ends_with("✗ cannot load config (+4 more lines)"),
        "{text}"
    );
    assert!(
        lines[2].ends_with("✗ cannot load config (+4 more lines)"),
        "{text}"
    );
}

#[test]
fn spans_that_end_after_their_root_was_printed_are_marked_as_a_late_part() {
    let screen = Screen::default();
    let pipeline = console(&screen, 100);
    let instrumentation = Instrumentation::new(&pipeline);
    let (send, receive) = std::sync::mpsc::channel();
    #[workflow]
    fn hand_off(send: std::sync::mpsc::Sender<opentelemetry::Context>) {
        send.send(opentelemetry::Context::current()).unwrap();
    }
    instrumentation.run(|| hand_off(send));
    pipeline.force_flush().unwrap();
    // A step that outlives its workflow, in the workflow's trace.
    let cx = receive.recv().unwrap();
    let _attached = cx.attach();
    leaf();
    drop(_attached);
    pipeline.shutdown().unwrap();
    let text = screen.text();
    let trace_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("trace "))
        .collect();
    assert_eq!(trace_lines.len(), 2, "{text}");
    let trace_id = trace_lines[0].strip_prefix("trace ").unwrap();
    assert_eq!(
        trace_lines[1],
        format!("trace {trace_id} (late part: spans that ended after the tree above was printed)")
    );
}

/// An OSC title, a bell, a screen clear, a carriage return and a
/// right-to-left override: what an error text or a foreign span name could
/// carry from a peer.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\rover\u{202e}txt";

#[step(args(label))]
fn hostile_step(label: &str, tracer: &opentelemetry_sdk::trace::SdkTracer) -> Result<(), String> {
    use opentelemetry::trace::Tracer as _;
    tracer.in_span(format!("foreign {HOSTILE}"), |_| {});
    Err(format!("declined {label}"))
}

#[workflow]
fn hostile_workflow(tracer: &opentelemetry_sdk::trace::SdkTracer) -> Result<(), String> {
    hostile_step(HOSTILE, tracer)
}

/// Whether `character` would act on a terminal rather than show.
fn acts_on_a_terminal(character: char) -> bool {
    (character.is_control() && character != '\n') || ('\u{202a}'..='\u{202e}').contains(&character)
}

#[test]
fn control_characters_in_errors_arguments_and_foreign_names_are_shown_not_obeyed() {
    use opentelemetry::trace::TracerProvider as _;
    let screen = Screen::default();
    let pipeline = console(&screen, 100);
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(pipeline.span_processor())
        .build();
    let tracer = provider.tracer("other");
    let _ = Instrumentation::new(&pipeline).run(|| hostile_workflow(&tracer));
    pipeline.shutdown().unwrap();
    let text = screen.text();
    assert!(
        !text.chars().any(acts_on_a_terminal),
        "raw control characters reach the terminal:\n{text:?}"
    );
    let visible = r"\u{1b}]0;owned\u{7}\u{1b}[2J\u{d}over\u{202e}txt";
    let lines: Vec<&str> = text.lines().collect();
    // The tree: the workflow and the step failed with the error text, the
    // step's argument as Rust writes a string, the foreign span's name.
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].starts_with("workflow hostile_workflow ["),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(&format!("] ✗ declined {visible}")),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(
            r#"└── step hostile_step(label="\u{1b}]0;owned\u{7}\u{1b}[2J\rover\u{202e}txt") ["#
        ),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with(&format!("] ✗ declined {visible}")),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(&format!("    └── span foreign {visible} [")),
        "{}",
        lines[3]
    );
}
