//! XEP-0030 Service Discovery: what the server says about its domain, and what it
//! says on behalf of an account (RFC 6121 §8.5.2.1.3: the server answers iqs sent to
//! a user's bare JID).

use super::{iq_result, IqAnswer};
use crate::hub::HubConfig;
use crate::ns;
use crate::stream::StanzaError;
use crate::xml::Element;

/// XEP-0030 §3.1: the features of the server's domain, given what is enabled.
pub fn server_features(config: &HubConfig) -> Vec<&'static str> {
    let mut features = vec![ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING];
    if config.software_version.is_some() {
        features.push(ns::VERSION);
    }
    if config.offline_enabled {
        features.push(ns::OFFLINE);
    }
    if config.registration_enabled {
        features.push(ns::REGISTER);
    }
    if config.carbons_enabled {
        features.push(ns::CARBONS);
    }
    // RFC 6121 §3.4: subscription pre-approval is implemented by the hub.
    features.push(ns::PRE_APPROVAL);
    features
}

/// Disco queries addressed to the server's domain: `disco#info` (identity
/// server/im and [`server_features`]) and `disco#items` (the visible components,
/// XEP-0114, as items). A `node` we do not know is `item-not-found` (XEP-0030 §3.1,
/// §4.1). `None` when `iq` is not a disco get.
pub fn handle_server(iq: &Element, config: &HubConfig, components: &[String]) -> Option<IqAnswer> {
    if iq.attr("type") != Some("get") {
        return None;
    }
    let query = iq.first_child()?;
    if query.is("query", ns::DISCO_INFO) {
        if query.attr("node").is_some() {
            return Some(Err(StanzaError::ItemNotFound));
        }
        let mut info = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "server")
                .with_attr("type", "im"),
        );
        for f in server_features(config) {
            info.push_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        Some(Ok(iq_result(iq, Some(info))))
    } else if query.is("query", ns::DISCO_ITEMS) {
        if query.attr("node").is_some() {
            return Some(Err(StanzaError::ItemNotFound));
        }
        let mut items = Element::new("query", ns::DISCO_ITEMS);
        for domain in components {
            items.push_child(Element::new("item", ns::DISCO_ITEMS).with_attr("jid", domain.as_str()));
        }
        Some(Ok(iq_result(iq, Some(items))))
    } else {
        None
    }
}

/// True when `iq` is a `disco#info` get (without node) that the server answers on
/// behalf of an account.
pub fn is_account_info_get(iq: &Element) -> bool {
    iq.attr("type") == Some("get")
        && iq
            .first_child()
            .is_some_and(|q| q.is("query", ns::DISCO_INFO) && q.attr("node").is_none())
}

/// XEP-0030 §3.1 and the Service Discovery Identities registry: an account's
/// `disco#info`, identity account/registered. The hub checks first that the asker
/// is the account itself or subscribed to its presence.
pub fn account_info(iq: &Element) -> Element {
    let info = Element::new("query", ns::DISCO_INFO)
        .with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "account")
                .with_attr("type", "registered"),
        )
        .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DISCO_INFO));
    iq_result(iq, Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(payload: Element) -> Element {
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "d1")
            .with_child(payload)
    }

    #[test]
    fn features_follow_config() {
        let mut config = HubConfig {
            software_version: None,
            offline_enabled: false,
            registration_enabled: false,
            ..HubConfig::default()
        };
        assert_eq!(
            server_features(&config),
            vec![ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PING, ns::PRE_APPROVAL]
        );
        config.software_version = Some(("M".into(), "1".into()));
        config.offline_enabled = true;
        config.registration_enabled = true;
        assert_eq!(
            server_features(&config),
            vec![
                ns::DISCO_INFO,
                ns::DISCO_ITEMS,
                ns::PING,
                ns::VERSION,
                ns::OFFLINE,
                ns::REGISTER,
                ns::PRE_APPROVAL
            ]
        );
    }

    #[test]
    fn unknown_node_is_item_not_found() {
        let iq = get(Element::new("query", ns::DISCO_INFO).with_attr("node", "x"));
        assert_eq!(
            handle_server(&iq, &HubConfig::default(), &[]),
            Some(Err(StanzaError::ItemNotFound))
        );
    }

    #[test]
    fn items_are_empty() {
        let iq = get(Element::new("query", ns::DISCO_ITEMS));
        let reply = handle_server(&iq, &HubConfig::default(), &[]).unwrap().unwrap();
        assert_eq!(
            reply.to_xml_in(ns::CLIENT),
            "<iq type='result' id='d1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        );
        let reply = handle_server(&iq, &HubConfig::default(), &["echo.localhost".into()])
            .unwrap()
            .unwrap();
        assert_eq!(
            reply.to_xml_in(ns::CLIENT),
            "<iq type='result' id='d1'><query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='echo.localhost'/></query></iq>"
        );
    }
}
