//! Reading JSON-lines span files line by line: several at once, a file still
//! being written (a line without its newline waits for it), lines bounded in
//! size, and malformed lines counted and skipped, never fatal.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::model::Span;

/// Longest line read; a longer one is skipped and counted as malformed.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Lines that could not be used, and where the first one was.
#[derive(Debug, Default)]
pub(crate) struct Malformed {
    pub(crate) count: u64,
    pub(crate) first: Option<String>,
}

impl Malformed {
    fn add(&mut self, path: &Path, line: u64, why: &str) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("{}:{line}: {why}", path.display()));
        }
    }
}

struct Source {
    path: PathBuf,
    reader: BufReader<File>,
    /// The bytes of a line whose newline has not been read yet.
    partial: Vec<u8>,
    /// Set while skipping the rest of a line that is too long.
    skipping: bool,
    line: u64,
}

/// Several files, read in turn.
pub(crate) struct Input {
    sources: Vec<Source>,
    /// One line of each file in turn, rather than each file to its end:
    /// the processes' batches then arrive roughly as they were written.
    pub(crate) interleave: bool,
    pub(crate) malformed: Malformed,
    pub(crate) spans: u64,
}

impl Input {
    pub(crate) fn open(paths: &[PathBuf]) -> io::Result<Input> {
        let sources = paths
            .iter()
            .map(|path| {
                File::open(path)
                    .map(|file| Source {
                        path: path.clone(),
                        reader: BufReader::with_capacity(1 << 16, file),
                        partial: Vec::new(),
                        skipping: false,
                        line: 0,
                    })
                    .map_err(|error| {
                        io::Error::new(error.kind(), format!("{}: {error}", path.display()))
                    })
            })
            .collect::<io::Result<_>>()?;
        Ok(Input {
            sources,
            interleave: false,
            malformed: Malformed::default(),
            spans: 0,
        })
    }

    /// Reads every complete line there is now; with `at_end`, a last line
    /// without a newline counts too. Returns whether anything was read.
    pub(crate) fn read(&mut self, at_end: bool, sink: &mut impl FnMut(Span)) -> io::Result<bool> {
        let mut any = false;
        let interleave = self.interleave;
        loop {
            let mut progressed = false;
            for source in &mut self.sources {
                if read_source(
                    source,
                    at_end,
                    interleave,
                    &mut self.malformed,
                    &mut self.spans,
                    sink,
                )? {
                    any = true;
                    progressed = true;
                }
            }
            if !interleave || !progressed {
                return Ok(any);
            }
        }
    }
}

/// Reads `source` to its end, or one line of it with `one_line`; returns
/// whether anything was read.
fn read_source(
    source: &mut Source,
    at_end: bool,
    one_line: bool,
    malformed: &mut Malformed,
    spans: &mut u64,
    sink: &mut impl FnMut(Span),
) -> io::Result<bool> {
    let mut any = false;
    loop {
        let buffer = source.reader.fill_buf()?;
        if buffer.is_empty() {
            if at_end && (!source.partial.is_empty() || source.skipping) {
                source.line += 1;
                finish_line(source, malformed, spans, sink);
            }
            break;
        }
        any = true;
        let (chunk, complete) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(newline) => (&buffer[..newline], Some(newline + 1)),
            None => (buffer, None),
        };
        if !source.skipping {
            if source.partial.len() + chunk.len() > MAX_LINE_BYTES {
                source.skipping = true;
                source.partial.clear();
            } else {
                source.partial.extend_from_slice(chunk);
            }
        }
        let consumed = complete.unwrap_or(buffer.len());
        source.reader.consume(consumed);
        if complete.is_some() {
            source.line += 1;
            finish_line(source, malformed, spans, sink);
            if one_line {
                break;
            }
        }
    }
    Ok(any)
}

fn finish_line(
    source: &mut Source,
    malformed: &mut Malformed,
    spans: &mut u64,
    sink: &mut impl FnMut(Span),
) {
    if std::mem::take(&mut source.skipping) {
        malformed.add(
            &source.path,
            source.line,
            &format!("longer than {MAX_LINE_BYTES} bytes"),
        );
        source.partial.clear();
        return;
    }
    let bytes = std::mem::take(&mut source.partial);
    let Ok(line) = std::str::from_utf8(&bytes) else {
        malformed.add(&source.path, source.line, "not UTF-8");
        return;
    };
    if line.trim().is_empty() {
        return;
    }
    match workflow_otel::read_json_line_with_resource(line) {
        Ok(read) => {
            let mut service: Option<(String, Rc<str>)> = None;
            for (resource, span) in &read {
                *spans += 1;
                let name = resource
                    .get(&opentelemetry::Key::from_static_str("service.name"))
                    .map(|name| name.as_str().into_owned())
                    .unwrap_or_default();
                // One shared name per run of spans of the same service.
                let shared = match &service {
                    Some((known, shared)) if *known == name => shared.clone(),
                    _ => {
                        let shared: Rc<str> = Rc::from(name.as_str());
                        service = Some((name, shared.clone()));
                        shared
                    }
                };
                sink(Span::from_data(span, shared));
            }
        }
        Err(error) => malformed.add(&source.path, source.line, &error.to_string()),
    }
}
