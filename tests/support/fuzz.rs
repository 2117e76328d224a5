//! Generated hostile input for every parser of what a peer sends: the W3C
//! headers, the workflow lineage and the message carrier's JSON. Shared by
//! `tests/propagation.rs` (a slice on every run) and
//! `examples/fuzz_propagation.rs` (ten million inputs in release mode).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;

use workflow_otel::propagation::{
    self, MAX_LINEAGE_HEADER_BYTES, MAX_PATH_SEGMENTS, TraceCarrier, WorkflowLineage,
};
use workflow_otel::w3c::{self, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS, TraceParent};

/// The parsers, in the order [`run`] counts what each accepted.
pub const PARSERS: [&str; 5] = ["traceparent", "tracestate", "baggage", "lineage", "carrier"];

/// A small deterministic generator (xorshift), so a failure reproduces.
pub struct Inputs(pub u64);

impl Inputs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Arbitrary bytes, as text the way a server would see them.
    fn bytes(&mut self) -> String {
        let length = self.below(80);
        let bytes: Vec<u8> = (0..length).map(|_| self.next() as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A valid header with a few edits: where parsers have most branches.
    fn mutated(&mut self, valid: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF-=,;%@*/_ \t\x00\xff~";
        let mut bytes = valid.as_bytes().to_vec();
        for _ in 0..=self.below(3) {
            let position = self.below(bytes.len() + 1);
            let byte = ALPHABET[self.below(ALPHABET.len())];
            match self.below(3) {
                0 if position < bytes.len() => bytes[position] = byte,
                1 => bytes.insert(position, byte),
                _ if position < bytes.len() => {
                    bytes.remove(position);
                }
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A valid header with one part repeated far past every limit.
    fn oversized(&mut self, valid: &str) -> String {
        let cut = self.below(valid.len() + 1);
        let (head, tail) = valid.split_at(cut);
        let repeat = 1 + self.below(4096);
        let piece = &tail[..tail.len().min(1 + self.below(16))];
        format!("{head}{}{tail}", piece.repeat(repeat))
    }

    /// Half arbitrary bytes, half edits of `valid`; now and then a giant.
    pub fn input(&mut self, valid: &str) -> String {
        match self.below(64) {
            0 => self.oversized(valid),
            n if n % 2 == 0 => self.bytes(),
            _ => self.mutated(valid),
        }
    }
}

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,t@v=x";
const BAGGAGE: &str = "userId=alice,serverNode=DF%2028,isProduction=false;ttl=60";
const LINEAGE: &str = "name=import;id=01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f405;depth=2;path=a/import;correlation=c;root=00f067aa0ba902b7;span=b7ad6b7169203331";
const CARRIER: &str = r#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","baggage":"a=1","workflow":{"name":"n","id":"01923e4f-5a6b-7c8d-9eaf-b0c1d2e3f405","depth":1,"hierarchy_path":"p","correlation_id":"c","root_span_id":"00f067aa0ba902b7","span_id":"b7ad6b7169203331"}}"#;

/// Sends `each` generated inputs through each parser; panics on the first
/// violation. Returns how many inputs each parser accepted.
pub fn run(each: usize, seed: u64) -> [usize; 5] {
    let mut inputs = Inputs(seed);
    let mut accepted = [0_usize; 5];

    for _ in 0..each {
        let header = inputs.input(TRACEPARENT);
        if let Ok(parent) = TraceParent::parse(&header) {
            accepted[0] += 1;
            let trimmed = header.trim_matches([' ', '\t']);
            if trimmed.starts_with("00-") {
                assert_eq!(parent.to_header(), trimmed, "{header:?}");
            }
            assert_eq!(TraceParent::parse(&parent.to_header()), Ok(parent));
        }
    }
    for _ in 0..each {
        let header = inputs.input(TRACESTATE);
        if let Ok(state) = w3c::parse_tracestate(&header) {
            accepted[1] += 1;
            let written = state.header();
            assert!(state.members().len() <= w3c::MAX_TRACESTATE_MEMBERS);
            assert_eq!(
                w3c::parse_tracestate(&written).map(|again| again.header()),
                Ok(written.clone()),
                "{header:?}"
            );
        }
    }
    for _ in 0..each {
        let header = inputs.input(BAGGAGE);
        let (entries, _) = w3c::parse_baggage(&header);
        if !entries.is_empty() {
            accepted[2] += 1;
        }
        assert!(entries.len() <= MAX_BAGGAGE_MEMBERS);
        let written = w3c::format_baggage(&entries);
        assert!(written.len() <= MAX_BAGGAGE_BYTES);
        assert_eq!(w3c::parse_baggage(&written).0, entries, "{header:?}");
    }
    for _ in 0..each {
        let header = inputs.input(LINEAGE);
        if let Some(parsed) = WorkflowLineage::from_header(&header) {
            accepted[3] += 1;
            let written = parsed.to_header();
            assert!(written.len() <= MAX_LINEAGE_HEADER_BYTES, "{header:?}");
            assert!(parsed.hierarchy_path.split('/').count() <= MAX_PATH_SEGMENTS);
            assert_eq!(WorkflowLineage::from_header(&written), Some(parsed));
        }
    }
    for _ in 0..each {
        let text = inputs.input(CARRIER);
        if let Ok(carrier) = serde_json::from_str::<TraceCarrier>(&text) {
            accepted[4] += 1;
            // Whatever a message holds, reading it as a parent never panics,
            // and what goes on to the next hop stays within the limits.
            let cx = propagation::extract(&carrier);
            let mut next: HashMap<String, String> = HashMap::new();
            propagation::inject(&cx, &mut next);
            for (name, limit) in [
                ("tracestate", w3c::MAX_TRACESTATE_BYTES),
                ("baggage", MAX_BAGGAGE_BYTES),
                ("workflow-lineage", MAX_LINEAGE_HEADER_BYTES),
            ] {
                let size = next.get(name).map_or(0, String::len);
                assert!(size <= limit, "{name} of {size} bytes from {text:?}");
            }
            assert_eq!(
                serde_json::from_str::<TraceCarrier>(&serde_json::to_string(&carrier).unwrap())
                    .unwrap(),
                carrier
            );
        }
    }
    accepted
}

/// The most memory this process has held, in KiB (Linux), to show the
/// parsers' memory stays bounded however many inputs pass.
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
