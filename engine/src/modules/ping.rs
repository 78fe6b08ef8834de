//! XEP-0199 XMPP Ping, server side: a client pings its server to check the stream.

use super::{iq_result, is_get_of, IqAnswer};
use crate::ns;
use crate::xml::Element;

/// XEP-0199 §4.2: a ping addressed to the server is answered with an empty
/// `result`. `None` when `iq` is not a ping get.
pub fn handle(iq: &Element) -> Option<IqAnswer> {
    is_get_of(iq, "ping", ns::PING).then(|| Ok(iq_result(iq, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_ping_get_only() {
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "c2s1")
            .with_attr("from", "a@localhost/r")
            .with_attr("to", "localhost")
            .with_child(Element::new("ping", ns::PING));
        let reply = handle(&ping).unwrap().unwrap();
        assert_eq!(reply.attr("type"), Some("result"));
        assert_eq!(reply.attr("id"), Some("c2s1"));
        assert!(reply.first_child().is_none());
        assert!(handle(&ping.clone().with_attr("type", "set")).is_none());
    }
}
