//! The remote endpoint of a CLIENT or PRODUCER span, from its peer
//! attributes, ranked as the specification's Zipkin mapping ranks them.

use std::net::IpAddr;

use opentelemetry::{KeyValue, Value};

use crate::export::otlp_json::write::{PushStr, integer, string};

/// The attributes a remote endpoint is made of, ranked as the mapping ranks
/// them (lower is better).
#[derive(Default)]
pub(super) struct Peer {
    name: Option<(usize, String)>,
    address: Option<IpAddr>,
    port: Option<u16>,
}

/// Attributes that name the remote service, best first (the mapping's
/// ranks 1, 2, 3, 5, 7, 9, 10, 11).
const PEER_NAMES: [&str; 8] = [
    "peer.service",
    "server.address",
    "net.peer.name",
    "server.socket.domain",
    "net.sock.peer.name",
    "peer.hostname",
    "peer.address",
    "db.name",
];

/// Attributes that give the remote endpoint's address and port.
const PEER_ADDRESSES: [&str; 6] = [
    "network.peer.address",
    "server.socket.address",
    "net.sock.peer.addr",
    "network.peer.port",
    "server.socket.port",
    "net.sock.peer.port",
];

impl Peer {
    pub(super) fn reads(key: &str) -> bool {
        PEER_NAMES.contains(&key) || PEER_ADDRESSES.contains(&key)
    }

    pub(super) fn offer(&mut self, attribute: &KeyValue) {
        let key = attribute.key.as_str();
        if let Some(rank) = PEER_NAMES.iter().position(|name| *name == key)
            && self.name.as_ref().is_none_or(|(best, _)| rank < *best)
        {
            self.name = Some((rank, attribute.value.as_str().into_owned()));
        }
        match key {
            "network.peer.address" | "server.socket.address" | "net.sock.peer.addr" => {
                if let Ok(address) = attribute.value.as_str().parse::<IpAddr>() {
                    self.address.get_or_insert(address);
                }
            }
            "network.peer.port" | "server.socket.port" | "net.sock.peer.port" => {
                if let Value::I64(port) = attribute.value {
                    self.port = self.port.or(u16::try_from(port).ok());
                }
            }
            _ => {}
        }
    }

    pub(super) fn write(self, out: &mut Vec<u8>) {
        if self.name.is_none() && self.address.is_none() {
            return;
        }
        out.push_str(r#","remoteEndpoint":{"#);
        let mut first = true;
        let mut comma = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        if let Some((_, name)) = &self.name {
            comma(out);
            out.push_str(r#""serviceName":"#);
            string(out, name);
        }
        match self.address {
            Some(IpAddr::V4(address)) => {
                comma(out);
                out.push_str(r#""ipv4":"#);
                string(out, &address.to_string());
            }
            Some(IpAddr::V6(address)) => {
                comma(out);
                out.push_str(r#""ipv6":"#);
                string(out, &address.to_string());
            }
            None => {}
        }
        if let (Some(port), Some(_)) = (self.port, self.address) {
            comma(out);
            out.push_str(r#""port":"#);
            integer(out, u64::from(port), false);
        }
        out.push(b'}');
    }
}
