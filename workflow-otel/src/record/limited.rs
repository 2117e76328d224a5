//! A record read within the span limits. The caller already kept the user's
//! attribute and event counts to the limits as they were added (memory stays
//! bounded); what is left is done here, by the encoders, on the worker: the
//! total attribute count (ours plus the user's), the length of every string,
//! the parent link. A span within the default limits takes the first branch
//! of [`RawSpan::visit_limited`] and nothing else.

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanContext;

use crate::pipeline::SpanLimits;
use crate::pipeline::limits::{cut_str, cut_value};
use crate::record::raw::{Attr, AttributeSink, RawSpan, SpanTimes};

/// A record's parent link, as the limits let it out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkWithin<'a> {
    pub(crate) link: Option<&'a SpanContext>,
    /// Whether the link keeps its `link.type` attribute.
    pub(crate) with_type: bool,
    pub(crate) dropped_links: u32,
}

impl LinkWithin<'_> {
    /// The link's dropped attribute count.
    pub(crate) fn dropped_attributes(&self) -> u32 {
        u32::from(!self.with_type)
    }
}

impl RawSpan {
    /// [`RawSpan::visit_attributes`] within `limits`; returns how many of the
    /// span's attributes were dropped, here and by the caller.
    pub(crate) fn visit_limited(
        &self,
        times: &SpanTimes,
        limits: &SpanLimits,
        sink: &mut impl AttributeSink,
    ) -> u32 {
        let dropped_by_caller = self
            .extras
            .as_ref()
            .map_or(0, |extras| extras.dropped_attributes);
        let fits = self.attribute_room() <= limits.attribute_count as usize;
        if fits && limits.attribute_value_length.is_none() {
            self.visit_attributes(times, sink);
            return dropped_by_caller;
        }
        let users_allowed = if fits {
            u32::MAX
        } else {
            let mut count = Count::default();
            self.visit_attributes(times, &mut count);
            limits.attribute_count.saturating_sub(count.ours)
        };
        let mut limited = Limited {
            inner: sink,
            in_users: false,
            users_left: users_allowed,
            dropped: 0,
            length: limits.attribute_value_length,
        };
        self.visit_attributes(times, &mut limited);
        dropped_by_caller.saturating_add(limited.dropped)
    }

    /// The parent workflow's link, if the link limits leave it.
    pub(crate) fn parent_link_within(&self, limits: &SpanLimits) -> LinkWithin<'_> {
        match self.parent_link() {
            Some(_) if limits.link_count == 0 => LinkWithin {
                link: None,
                with_type: false,
                dropped_links: 1,
            },
            link => LinkWithin {
                link,
                with_type: limits.link_attribute_count > 0,
                dropped_links: 0,
            },
        }
    }
}

/// Text of an event's attribute (the exception's type and message), cut to
/// the event limit.
pub(crate) fn event_text<'a>(limits: &SpanLimits, text: &'a str) -> &'a str {
    match limits.event_and_link_value_length {
        Some(limit) => cut_str(text, limit),
        None => text,
    }
}

/// Counts ours and the user's attributes.
#[derive(Default)]
struct Count {
    ours: u32,
    in_users: bool,
}

impl AttributeSink for Count {
    fn attribute(&mut self, _key: &'static str, _value: Attr<'_>) {
        self.ours += u32::from(!self.in_users);
    }

    fn pair(&mut self, _attribute: &KeyValue) {
        self.ours += u32::from(!self.in_users);
    }

    fn users(&mut self, emit: impl FnOnce(&mut Self)) {
        self.in_users = true;
        emit(self);
        self.in_users = false;
    }
}

/// Passes attributes on within the limits: the user's up to their room,
/// every string cut to the length limit. What an encoder keeps per site or
/// per workflow is not used here: cut values are not the ones it kept.
struct Limited<'a, S> {
    inner: &'a mut S,
    in_users: bool,
    users_left: u32,
    dropped: u32,
    length: Option<u32>,
}

impl<S> Limited<'_, S> {
    /// Whether one more attribute may pass.
    fn admit(&mut self) -> bool {
        if !self.in_users {
            return true;
        }
        if self.users_left == 0 {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.users_left -= 1;
        true
    }
}

impl<S: AttributeSink> AttributeSink for Limited<'_, S> {
    fn attribute(&mut self, key: &'static str, value: Attr<'_>) {
        if !self.admit() {
            return;
        }
        let Some(limit) = self.length else {
            return self.inner.attribute(key, value);
        };
        let value = match value {
            Attr::Static(text) => Attr::Static(cut_str(text, limit)),
            Attr::Text(text) => Attr::Text(cut_str(text, limit)),
            Attr::Shared(text) if cut_str(text.as_str(), limit).len() < text.as_str().len() => {
                Attr::Text(cut_str(text.as_str(), limit))
            }
            // Written as text of at most 35 characters: cut only under a
            // limit that small.
            id_or_time @ (Attr::TraceId(_) | Attr::SpanId(_) | Attr::Time(_)) if limit < 35 => {
                let text = id_or_time.to_value().as_str().into_owned();
                return self.inner.attribute(key, Attr::Text(cut_str(&text, limit)));
            }
            other => other,
        };
        self.inner.attribute(key, value);
    }

    fn pair(&mut self, attribute: &KeyValue) {
        if !self.admit() {
            return;
        }
        match self
            .length
            .and_then(|limit| cut_value(&attribute.value, limit))
        {
            Some(value) => self
                .inner
                .pair(&KeyValue::new(attribute.key.clone(), value)),
            None => self.inner.pair(attribute),
        }
    }

    fn users(&mut self, emit: impl FnOnce(&mut Self)) {
        self.in_users = true;
        emit(self);
        self.in_users = false;
    }
}
