//! The protobuf wire format, as much of it as an OTLP trace request needs:
//! varints, fixed-width numbers, and length-delimited fields written into
//! one buffer, a nested message's length put in front of it once it is
//! written (in the fewest bytes, as prost writes it).

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

pub(super) fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

/// A `bytes` or `string` field; left out when empty, as proto3 does.
pub(super) fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        bytes_always(out, field, value);
    }
}

/// A length-delimited field written even when empty: a `oneof` member or a
/// message that is present.
pub(super) fn bytes_always(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(out, field, LENGTH_DELIMITED);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// An unsigned or `int64` varint field; left out when zero.
pub(super) fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(out, field, VARINT);
        varint(out, value);
    }
}

/// An `int64` field of a `oneof`: written even when zero.
pub(super) fn int_always(out: &mut Vec<u8>, field: u32, value: i64) {
    key(out, field, VARINT);
    // int64 is the two's complement bits as a varint.
    varint(out, value as u64);
}

pub(super) fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(out, field, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// A `bool` field of a `oneof`: written even when false.
pub(super) fn bool_always(out: &mut Vec<u8>, field: u32, value: bool) {
    key(out, field, VARINT);
    out.push(u8::from(value));
}

/// A `double` field of a `oneof`: written even when zero.
pub(super) fn double_always(out: &mut Vec<u8>, field: u32, value: f64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&value.to_bits().to_le_bytes());
}

pub(super) fn fixed32(out: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(out, field, FIXED32);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// A message field, written by `body`, present even when empty.
pub(super) fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LENGTH_DELIMITED);
    // One byte for the length, which most nested messages need; moved
    // along when the message turns out longer.
    let at = out.len();
    out.push(0);
    body(out);
    let length = out.len() - at - 1;
    if length < 0x80 {
        out[at] = length as u8;
        return;
    }
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, length as u64);
    let extra = prefix.len() - 1;
    out.resize(out.len() + extra, 0);
    out.copy_within(at + 1..at + 1 + length, at + 1 + extra);
    out[at..at + prefix.len()].copy_from_slice(&prefix);
}

/// A message of the official types, as a field.
pub(super) fn prost_message(out: &mut Vec<u8>, field: u32, value: &impl prost::Message) {
    key(out, field, LENGTH_DELIMITED);
    varint(out, value.encoded_len() as u64);
    value.encode_raw(out);
}
