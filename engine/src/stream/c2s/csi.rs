//! XEP-0352 client state indication: while the client says it is inactive, presence
//! and chat-state-only messages wait (they are noise to an app in the background);
//! they all go out when it becomes active again, or when too many wait
//! (MongooseIM's `mod_csi` `buffer_max`). Messages with a body and iqs are never held.

use std::time::Instant;

use super::{C2s, Outbound};
use crate::ns;
use crate::stream::StreamError;
use crate::xml::Element;

/// The client's state and what waits for it.
#[derive(Debug, Default)]
pub(super) struct ClientState {
    inactive: bool,
    held: Vec<Outbound>,
}

impl ClientState {
    /// Held stanzas, oldest first, leaving none.
    pub fn take_held(&mut self) -> Vec<Outbound> {
        std::mem::take(&mut self.held)
    }
}

/// XEP-0352 §4 (what an inactive client does not need at once): presence, and
/// messages without a body that carry a XEP-0085 chat state.
fn holdable(out: &Outbound) -> bool {
    match out {
        Outbound::Stanza(el) if el.name() == "presence" => true,
        Outbound::Stanza(el) if el.name() == "message" => {
            el.get_child("body", el.ns()).is_none() && el.children().any(|c| c.ns() == ns::CHATSTATES)
        }
        _ => false,
    }
}

impl C2s {
    /// `<active/>` or `<inactive/>` from the client (also inline in Bind 2).
    pub(super) fn on_csi(&mut self, el: &Element, now: Instant) {
        if self.config.csi.is_none() {
            return self.stream_error(StreamError::UnsupportedStanzaType, None);
        }
        match el.name() {
            "inactive" => self.csi.inactive = true,
            "active" => {
                self.csi.inactive = false;
                self.flush_held(now);
            }
            _ => self.stream_error(StreamError::UnsupportedStanzaType, None),
        }
    }

    /// Sets the initial state requested inline in Bind 2.
    pub(super) fn csi_set_inactive(&mut self, inactive: bool) {
        if self.config.csi.is_some() {
            self.csi.inactive = inactive;
        }
    }

    /// Sends `out` to the client now, or holds it for an inactive one.
    pub(super) fn deliver(&mut self, out: Outbound, now: Instant) {
        if self.csi.inactive && holdable(&out) {
            self.csi.held.push(out);
            let max = self.config.csi.as_ref().map_or(0, |c| c.buffer_max);
            if self.csi.held.len() > max {
                self.flush_held(now);
            }
            return;
        }
        self.transmit(out, now);
    }

    fn flush_held(&mut self, now: Instant) {
        for out in self.csi.take_held() {
            self.transmit(out, now);
        }
    }
}
