//! What an encoder of records keeps from one span to the next: its bytes for
//! the attributes that are the same for every span of a call site (bounded by
//! the program's sites), and for the steps of the last workflow seen. Each
//! encoder keeps its own: the bytes are in its format.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::record::context::WorkflowContext;
use crate::record::span::Site;

#[derive(Debug, Default)]
pub(crate) struct Fragments {
    sites: HashMap<usize, Box<[u8]>, BuildHasherDefault<AddressHasher>>,
    workflow: Option<(uuid::Uuid, Box<[u8]>)>,
}

impl Fragments {
    pub(crate) fn of_site(&self, site: &'static Site) -> Option<&[u8]> {
        self.sites.get(&address(site)).map(|bytes| &**bytes)
    }

    pub(crate) fn keep_site(&mut self, site: &'static Site, bytes: Box<[u8]>) {
        self.sites.insert(address(site), bytes);
    }

    pub(crate) fn of_workflow(&self, workflow: &WorkflowContext) -> Option<&[u8]> {
        // Workflow ids are unique: a new workflow never matches an old one.
        match &self.workflow {
            Some((id, bytes)) if *id == workflow.id() => Some(bytes),
            _ => None,
        }
    }

    pub(crate) fn keep_workflow(&mut self, workflow: &WorkflowContext, bytes: Box<[u8]>) {
        self.workflow = Some((workflow.id(), bytes));
    }
}

/// A site is a static: its address names it for the program's life.
fn address(site: &'static Site) -> usize {
    std::ptr::from_ref(site) as usize
}

/// Hashes a static's address: distinct already, only spread over the bits.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8 | u64::from(*byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, address: usize) {
        self.0 = (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
