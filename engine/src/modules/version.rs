//! XEP-0092 Software Version, answered by the server for its own domain
//! (`mod_version`).

use super::{iq_result, is_get_of, IqAnswer};
use crate::hub::HubConfig;
use crate::ns;
use crate::xml::Element;

/// XEP-0092 §2: the `<query xmlns='jabber:iq:version'/>` answer with `<name/>`,
/// `<version/>` and, when configured, `<os/>`. `None` when `iq` is not a version
/// get or the module is disabled (`software_version` is `None`), so the hub answers
/// `service-unavailable`.
pub fn handle(iq: &Element, config: &HubConfig) -> Option<IqAnswer> {
    if !is_get_of(iq, "query", ns::VERSION) {
        return None;
    }
    let (name, version) = config.software_version.as_ref()?;
    let mut query = Element::new("query", ns::VERSION)
        .with_child(Element::new("name", ns::VERSION).with_text(name.as_str()))
        .with_child(Element::new("version", ns::VERSION).with_text(version.as_str()));
    if let Some(os) = &config.version_os {
        query.push_child(Element::new("os", ns::VERSION).with_text(os.as_str()));
    }
    Some(Ok(iq_result(iq, Some(query))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> Element {
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "v1")
            .with_child(Element::new("query", ns::VERSION))
    }

    #[test]
    fn answers_name_version_and_os() {
        let config = HubConfig {
            software_version: Some(("Meerkat".into(), "1.2".into())),
            version_os: Some("Linux".into()),
            ..HubConfig::default()
        };
        let reply = handle(&get(), &config).unwrap().unwrap();
        assert_eq!(
            reply.to_xml_in(ns::CLIENT),
            "<iq type='result' id='v1'><query xmlns='jabber:iq:version'><name>Meerkat</name>\
             <version>1.2</version><os>Linux</os></query></iq>"
        );
    }

    #[test]
    fn disabled_module_does_not_claim_the_iq() {
        let config = HubConfig {
            software_version: None,
            ..HubConfig::default()
        };
        assert!(handle(&get(), &config).is_none());
    }
}
