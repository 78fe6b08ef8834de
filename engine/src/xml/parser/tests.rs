//! Stream-level tests of the parser: every event and every error, each checked to come
//! out the same whether the input arrives at once, in pieces or one byte at a time.

use super::*;
use crate::ns;

pub(super) const HEADER: &str = "<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Everything a parser yields for an input: its events, then the error if any.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Outcome {
    pub events: Vec<StreamEvent>,
    pub error: Option<XmlError>,
}

/// Pulls events until more input is needed; false once the parser has failed.
fn drain(p: &mut StreamParser, out: &mut Outcome) -> bool {
    loop {
        match p.next_event() {
            Ok(Some(e)) => out.events.push(e),
            Ok(None) => return true,
            Err(e) => {
                out.error = Some(e);
                return false;
            }
        }
    }
}

/// Feeds `input` cut at `cuts` (sorted, inside the input), draining after each piece.
pub(super) fn parse_pieces(input: &[u8], cuts: &[usize], limits: ParseLimits) -> Outcome {
    let mut p = StreamParser::new(limits);
    let mut out = Outcome {
        events: Vec::new(),
        error: None,
    };
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        p.feed(&input[from..to]);
        from = to;
        if !drain(&mut p, &mut out) {
            // The error is sticky and further input is ignored.
            p.feed(b"<more/>");
            assert_eq!(p.next_event(), Err(out.error.clone().unwrap()));
            break;
        }
    }
    out
}

pub(super) fn parse_with(input: &[u8], limits: ParseLimits) -> Outcome {
    parse_pieces(input, &[], limits)
}

/// Parses at once, and checks that byte-at-a-time and 7-byte pieces agree.
fn parse(input: &str) -> Outcome {
    parse_limited(input, ParseLimits::default())
}

fn parse_limited(input: &str, limits: ParseLimits) -> Outcome {
    let input = input.as_bytes();
    let whole = parse_with(input, limits);
    let every: Vec<usize> = (1..input.len()).collect();
    assert_eq!(parse_pieces(input, &every, limits), whole, "byte at a time");
    let sevens: Vec<usize> = (1..input.len()).filter(|i| i % 7 == 0).collect();
    assert_eq!(parse_pieces(input, &sevens, limits), whole, "7-byte pieces");
    whole
}

/// The elements of a successful parse after the header.
fn elements(input: &str) -> Vec<Element> {
    let out = parse(&format!("{HEADER}{input}"));
    assert_eq!(out.error, None, "{input}");
    out.events
        .into_iter()
        .skip(1)
        .map(|e| match e {
            StreamEvent::Element(e, _) => e,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn element(input: &str) -> Element {
    let mut all = elements(input);
    assert_eq!(all.len(), 1, "{input}");
    all.remove(0)
}

fn error_of(input: &str) -> XmlError {
    let out = parse(input);
    out.error
        .unwrap_or_else(|| panic!("no error for {input:?}: {:?}", out.events))
}

fn not_well_formed(body: &str) {
    let input = format!("{HEADER}{body}");
    let e = error_of(&input);
    assert!(matches!(e, XmlError::NotWellFormed(_)), "{body:?}: {e:?}");
}

fn restricted(input: &str) {
    let e = error_of(input);
    assert!(matches!(e, XmlError::RestrictedXml(_)), "{input:?}: {e:?}");
}

fn header_of(input: &str) -> StreamHeader {
    match parse(input).events.first() {
        Some(StreamEvent::Header(h)) => h.clone(),
        other => panic!("no header: {other:?}"),
    }
}

// ---- events ----

#[test]
fn header_records_namespaces_and_attributes() {
    let h = header_of(
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' to='example.org' from=\"example.net\" \
         version='1.0' id='abc' xml:lang='en'>",
    );
    assert_eq!(h.name, "stream");
    assert_eq!(h.name_ns, ns::STREAMS);
    assert_eq!(h.default_ns.as_deref(), Some(ns::SERVER));
    assert_eq!(
        h.attrs,
        [
            ("to", "example.org"),
            ("from", "example.net"),
            ("version", "1.0"),
            ("id", "abc"),
            ("xml:lang", "en")
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    assert_eq!(h.attr("xml:lang"), Some("en"));
    assert_eq!(
        h.ns_decls,
        [("stream", ns::STREAMS), ("db", "jabber:server:dialback")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
}

#[test]
fn header_after_xml_declaration() {
    for decl in [
        "<?xml version='1.0'?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\r\n ",
    ] {
        let h = header_of(&format!("{decl}{HEADER}"));
        assert_eq!(h.attr("to"), Some("localhost"), "{decl}");
    }
}

#[test]
fn header_without_default_namespace_or_prefix() {
    let h = header_of("<stream xmlns='http://etherx.jabber.org/streams'>");
    assert_eq!((h.name.as_str(), h.name_ns.as_str()), ("stream", ns::STREAMS));
    assert_eq!(h.default_ns.as_deref(), Some(ns::STREAMS));
    let h = header_of("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
    assert_eq!(h.default_ns, None);
    let out = parse("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message/>");
    assert_eq!(
        out.events[1],
        StreamEvent::Element(Element::new("message", ""), 10)
    );
}

#[test]
fn stanzas_inherit_the_stream_namespace() {
    let m = element("<message to='a@b'><body>hi</body></message>");
    assert_eq!(
        m,
        Element::new("message", ns::CLIENT)
            .with_attr("to", "a@b")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
    );
}

#[test]
fn xmlns_overrides_and_is_not_an_attribute() {
    let iq = element(
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster' ver='2'>\
         <item jid='x@y'/><item xmlns='' jid='z'/></query><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let query = iq.get_child("query", ns::ROSTER).expect("query");
    assert_eq!(query.attrs().collect::<Vec<_>>(), [("ver", "2")]);
    let items: Vec<_> = query.children().collect();
    assert_eq!(items[0].ns(), ns::ROSTER);
    assert_eq!(items[1].ns(), "", "xmlns='' undeclares the default namespace");
    assert!(iq.get_child("ping", ns::PING).is_some());
    assert_eq!(iq.ns(), ns::CLIENT);
}

#[test]
fn prefixes_resolve_from_root_and_elements() {
    let all = elements(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
         <x:a xmlns:x='urn:x'><b/><x:c x:attr='1' plain='2'/></x:a>\
         <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    );
    assert!(all[0].is("features", ns::STREAMS));
    let mech = all[0].get_child("mechanisms", ns::SASL).expect("mechanisms");
    assert_eq!(
        mech.get_child("mechanism", ns::SASL)
            .map(Element::text)
            .as_deref(),
        Some("PLAIN")
    );
    assert!(all[1].is("a", "urn:x"));
    let children: Vec<_> = all[1].children().collect();
    assert!(
        children[0].is("b", ns::CLIENT),
        "unprefixed child keeps the default namespace"
    );
    assert!(children[1].is("c", "urn:x"));
    assert_eq!(children[1].attr("x:attr"), Some("1"));
    assert_eq!(children[1].attr("plain"), Some("2"));
    assert!(all[2].is("error", ns::STREAMS));
    assert!(all[2].get_child("host-unknown", ns::STREAM_ERRORS).is_some());

    // A prefix declared on the header (dialback) applies to every stanza.
    let out = parse(
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback'><db:result from='a' to='b'>key</db:result>",
    );
    match &out.events[1] {
        StreamEvent::Element(e, _) => assert!(e.is("result", "jabber:server:dialback")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn xml_lang_keeps_its_qualified_name() {
    let m = element("<message xml:lang='fr'><body xml:lang=\"en\">x</body></message>");
    assert_eq!(m.attr("xml:lang"), Some("fr"));
    assert_eq!(m.children().next().and_then(|b| b.attr("xml:lang")), Some("en"));
}

#[test]
fn text_is_unescaped() {
    let b = element(
        "<body>1 &lt; 2 &amp;&amp; 3 &gt; 2 &apos;q&apos; &quot;d&quot; &#65;&#x1F600; \
         <![CDATA[<raw> & ]] ]]>]]&gt; é\r\nline</body>",
    );
    assert_eq!(
        b.text(),
        "1 < 2 && 3 > 2 'q' \"d\" A\u{1F600} <raw> & ]] ]]> é\nline"
    );
    assert_eq!(b.nodes().len(), 1, "adjacent character data is one text node");
}

#[test]
fn attribute_values_with_markup_characters_and_quotes() {
    let m = element(
        "<message a='x > y' b=\"it's\" c='say \"hi\"' d='&lt;&amp;&apos;&quot;' \
         e='tab\there\nnl&#10;' f = 'spaced' />",
    );
    assert_eq!(m.attr("a"), Some("x > y"));
    assert_eq!(m.attr("b"), Some("it's"));
    assert_eq!(m.attr("c"), Some("say \"hi\""));
    assert_eq!(m.attr("d"), Some("<&'\""));
    assert_eq!(m.attr("e"), Some("tab here nl\n"), "XML 1.0 §3.3.3 normalisation");
    assert_eq!(m.attr("f"), Some("spaced"));
}

#[test]
fn whitespace_keepalives_are_ignored() {
    let all = elements(" \n<presence/>\r\n\t \n<presence/>   ");
    assert_eq!(all.len(), 2);
}

#[test]
fn whitespace_inside_stanzas_is_kept() {
    let m = element("<message>\n  <body> a </body>\n</message>");
    assert_eq!(m.nodes().len(), 3);
    assert_eq!(m.children().next().map(Element::text).as_deref(), Some(" a "));
}

#[test]
fn element_length_is_its_input_bytes() {
    let out = parse(&format!("{HEADER}  <a x='1' >é</a >\n<b/>"));
    let lens: Vec<usize> = out
        .events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Element(_, n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(lens, ["<a x='1' >é</a >".len(), "<b/>".len()]);
}

#[test]
fn close_event_and_trailing_whitespace() {
    let out = parse(&format!("{HEADER}<presence/></stream:stream >\n "));
    assert_eq!(out.error, None);
    assert_eq!(out.events.len(), 3);
    assert_eq!(out.events[2], StreamEvent::Close);
}

#[test]
fn empty_root_is_a_header_then_a_close() {
    let out = parse("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>");
    assert!(matches!(out.events[0], StreamEvent::Header(_)));
    assert_eq!(out.events[1], StreamEvent::Close);
    assert_eq!(out.events.len(), 2);
}

#[test]
fn reset_starts_a_new_stream() {
    let mut p = StreamParser::new(ParseLimits::default());
    p.feed(format!("{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><partial").as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(..)))));
    assert_eq!(p.next_event(), Ok(None));
    p.reset();
    // RFC 6120 §4.3.3: the new stream may start with an XML declaration again.
    p.feed(format!("<?xml version='1.0'?>{HEADER}<iq/>").as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    assert_eq!(
        p.next_event(),
        Ok(Some(StreamEvent::Element(Element::new("iq", ns::CLIENT), 5)))
    );

    // reset also clears an error.
    p.feed(b"oops");
    assert!(p.next_event().is_err());
    p.reset();
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
}

#[test]
fn no_event_until_complete() {
    let mut p = StreamParser::new(ParseLimits::default());
    assert_eq!(p.next_event(), Ok(None));
    p.feed(&HEADER.as_bytes()[..HEADER.len() - 1]);
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"><message><body>x</body></message");
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b">");
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(..)))));
    assert_eq!(p.next_event(), Ok(None));
}

// ---- not-well-formed ----

#[test]
fn bad_utf8_is_not_well_formed() {
    for bytes in [
        &b"<body>\xff</body>"[..],
        b"<body a='\xc3'/>",
        b"<b\xc3\x28/>",
        b"<body>\xed\xa0\x80</body>",
    ] {
        let mut input = HEADER.as_bytes().to_vec();
        input.extend_from_slice(bytes);
        let out = parse_with(&input, ParseLimits::default());
        assert!(matches!(out.error, Some(XmlError::NotWellFormed(_))), "{bytes:?}");
    }
    not_well_formed("<body>\u{FFFF}</body>");
}

#[test]
fn mismatched_tags_are_not_well_formed() {
    not_well_formed("<message><body></message></body>");
    not_well_formed("<a></b>");
    not_well_formed("<x:a xmlns:x='u' xmlns:y='u'></y:a>");
    not_well_formed("</stream:foo>");
    not_well_formed("</message>");
    let e = error_of("</stream:stream>");
    assert!(matches!(e, XmlError::NotWellFormed(_)), "{e:?}");
}

#[test]
fn bad_attribute_syntax_is_not_well_formed() {
    for tag in [
        "<a b=c/>",
        "<a b/>",
        "<a b='1'c='2'/>",
        "<a b='1' b='2'/>",
        "<a xmlns='x' xmlns='y'/>",
        "<a b='<'/>",
        "<a b='1/><b/>",
        "<a b='&'/>",
        "<a b='&amp'/>",
        "<a 'b'/>",
        "<a b='1' / >",
        "<a x:b='1' xmlns:x='u' y:b='2' xmlns:y='u'/>",
        "<a :b='1'/>",
        "<a xmlns:='u'/>",
    ] {
        not_well_formed(tag);
    }
}

#[test]
fn undeclared_prefixes_are_not_well_formed() {
    not_well_formed("<foo:bar/>");
    not_well_formed("<a foo:b='1'/>");
    not_well_formed("<a><x:b xmlns:x='u'/><x:c/></a>");
    not_well_formed("<xmlns:a/>");
}

#[test]
fn reserved_namespace_declarations_are_not_well_formed() {
    not_well_formed("<a xmlns:p=''/>");
    not_well_formed("<a xmlns:xmlns='u'/>");
    not_well_formed("<a xmlns:xml='u'/>");
    not_well_formed("<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>");
    not_well_formed("<a xmlns='http://www.w3.org/2000/xmlns/'/>");
    // Binding xml to its own namespace is allowed.
    element("<a xmlns:xml='http://www.w3.org/XML/1998/namespace'/>");
}

#[test]
fn top_level_text_is_not_well_formed() {
    not_well_formed("hello");
    not_well_formed("<a/>x");
    not_well_formed("<![CDATA[ ]]>");
    let e = error_of("junk<stream:stream>");
    assert!(matches!(e, XmlError::NotWellFormed(_)), "{e:?}");
}

#[test]
fn second_root_is_not_well_formed() {
    not_well_formed("</stream:stream><stream:stream>");
    not_well_formed("</stream:stream>x");
    let e = error_of("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/><a/>");
    assert!(matches!(e, XmlError::NotWellFormed(_)), "{e:?}");
}

#[test]
fn invalid_names_and_markup_are_not_well_formed() {
    for body in [
        "<1a/>",
        "< a/>",
        "<a\u{D7}/>",
        "<a:b:c xmlns:a='u'/>",
        "<a></ a>",
        "<a></>",
        "<a><!x></a>",
        "<a><![CDATX[</a>",
        "<a/ >",
        "<a b='1'!>",
    ] {
        not_well_formed(body);
    }
}

#[test]
fn forbidden_characters_are_not_well_formed() {
    not_well_formed("<a>\u{1}</a>");
    not_well_formed("<a b='\u{0}'/>");
    not_well_formed("<a><![CDATA[\u{8}]]></a>");
    not_well_formed("\u{c}");
    not_well_formed("<a>]]></a>");
    not_well_formed("<a>&#0;</a>");
    not_well_formed("<a>&#xFFFE;</a>");
    not_well_formed("<a>&</a>");
    not_well_formed("<a>&#x;</a>");
}

#[test]
fn bad_xml_declarations_are_not_well_formed() {
    for input in ["<?xml version='2.0'?>", "<?xml?>", "<?xml encoding='UTF-8'?>"] {
        let e = error_of(&format!("{input}{HEADER}"));
        assert!(
            matches!(e, XmlError::NotWellFormed(_) | XmlError::RestrictedXml(_)),
            "{input}: {e:?}"
        );
    }
    // RFC 6120 §11.6: UTF-8 only, and another encoding has its own stream error.
    for encoding in ["UTF-16", "ISO-8859-1"] {
        let e = error_of(&format!("<?xml version='1.0' encoding='{encoding}'?>{HEADER}"));
        assert_eq!(e, XmlError::UnsupportedEncoding(encoding.into()));
    }
    let e = error_of(&format!("</a>{HEADER}"));
    assert!(matches!(e, XmlError::NotWellFormed(_)), "{e:?}");
}

// ---- restricted-xml ----

#[test]
fn dtd_is_restricted() {
    restricted(&format!("<!DOCTYPE stream>{HEADER}"));
    restricted(&format!(
        "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>{HEADER}"
    ));
    restricted(&format!("{HEADER}<!DOCTYPE x>"));
}

#[test]
fn comments_are_restricted() {
    restricted(&format!("<!-- hi -->{HEADER}"));
    restricted(&format!("{HEADER}<!-- keepalive -->"));
    restricted(&format!("{HEADER}<message><!-- x --></message>"));
}

#[test]
fn processing_instructions_are_restricted() {
    restricted(&format!("<?php x ?>{HEADER}"));
    restricted(&format!("<?xml-stylesheet href='a'?>{HEADER}"));
    restricted(&format!(" <?xml version='1.0'?>{HEADER}"));
    restricted(&format!("<?xml version='1.0'?><?xml version='1.0'?>{HEADER}"));
    restricted(&format!("{HEADER}<?xml version='1.0'?>"));
    restricted(&format!("{HEADER}<message><?pi data?></message>"));
}

#[test]
fn entities_other_than_predefined_are_restricted() {
    restricted(&format!("{HEADER}<body>&nbsp;</body>"));
    restricted(&format!("{HEADER}<a b='&foo;'/>"));
    restricted(&format!("{HEADER}<a xmlns='&ns;'/>"));
}

// ---- policy-violation ----

fn limit(max_stanza_size: usize) -> ParseLimits {
    ParseLimits { max_stanza_size }
}

fn too_big(limit: usize) -> XmlError {
    XmlError::PolicyViolation {
        limit,
        exceeded: ExceededLimit::StanzaSize,
    }
}

/// A stanza longer than [`HEADER`], so limits between the two apply to it only.
fn long_stanza() -> String {
    format!("<message><body>{}</body></message>", "0123456789".repeat(12))
}

#[test]
fn elements_up_to_the_limit_are_accepted() {
    let stanza = long_stanza();
    let out = parse_limited(&format!("{HEADER}\n  {stanza}  \n{stanza}"), limit(stanza.len()));
    assert_eq!(out.error, None);
    assert_eq!(out.events.len(), 3, "whitespace between elements is not counted");
}

#[test]
fn an_element_over_the_limit_is_a_policy_violation() {
    let stanza = long_stanza();
    let out = parse_limited(&format!("{HEADER}{stanza}"), limit(stanza.len() - 1));
    assert_eq!(out.events.len(), 1);
    assert_eq!(
        out.error,
        Some(XmlError::PolicyViolation {
            limit: stanza.len() - 1,
            exceeded: ExceededLimit::StanzaSize,
        })
    );
}

/// A session waiting for its next stanza keeps no parse buffers; one in the middle
/// of a stanza keeps just what it still needs.
#[test]
fn a_drained_parser_holds_no_buffers() {
    let mut p = StreamParser::new(ParseLimits::default());
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    p.feed(b"<message to='romeo@localhost'><body>a longer text, to need some room</body></message> ");
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(..)))));
    assert_eq!(p.next_event(), Ok(None));
    assert_eq!(p.buffer_capacity(), 1, "the whitespace, until the next token");
    p.feed(b"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></i");
    assert_eq!(p.next_event(), Ok(None));
    assert!(p.buffer_capacity() > 0, "the unfinished end tag stays");
    p.feed(b"q>");
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(el, _))) if el.name() == "iq"));
    assert_eq!(p.next_event(), Ok(None));
    assert_eq!(p.buffer_capacity(), 0);
}

/// Giving buffers back between stanzas keeps the namespaces right: the header's
/// declarations stay in scope for every stanza, a stanza's own ones end with it.
#[test]
fn namespaces_stay_right_across_drained_stanzas() {
    let mut p = StreamParser::new(ParseLimits::default());
    p.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:db='jabber:server:dialback' \
        xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
    );
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    assert_eq!(p.next_event(), Ok(None));
    for _ in 0..3 {
        p.feed(b"<iq xmlns:x='urn:x' type='get' id='1'><x:query/></iq>");
        match p.next_event() {
            Ok(Some(StreamEvent::Element(iq, _))) => {
                assert_eq!(iq.ns(), "jabber:client");
                assert!(iq.get_child("query", "urn:x").is_some(), "{iq:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.next_event(), Ok(None));
        p.feed(b"<db:result from='a' to='b'/>");
        match p.next_event() {
            Ok(Some(StreamEvent::Element(result, _))) => assert_eq!(result.ns(), "jabber:server:dialback"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.next_event(), Ok(None));
    }
    p.feed(b"<x:query/>");
    assert!(
        matches!(p.next_event(), Err(XmlError::NotWellFormed(_))),
        "x: ended with its iq"
    );
}

#[test]
fn policy_violation_is_reported_before_the_element_ends() {
    let mut p = StreamParser::new(limit(200));
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    p.feed(b"<message><body>");
    assert_eq!(p.next_event(), Ok(None));
    p.feed(&[b'a'; 185]);
    assert_eq!(p.next_event(), Ok(None), "exactly 200 bytes so far");
    p.feed(b"a");
    assert_eq!(p.next_event(), Err(too_big(200)));
    // An endless element never makes the buffer grow again.
    for _ in 0..1000 {
        p.feed(&[b'a'; 1000]);
    }
    assert!(p.buffer_capacity() < 1000);
    assert_eq!(p.next_event(), Err(too_big(200)));
}

#[test]
fn nesting_up_to_max_depth_is_accepted() {
    let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
    let all = elements(&format!("{deep}<b/>"));
    let mut node = &all[0];
    let mut levels = 1;
    while let Some(child) = node.children().next() {
        node = child;
        levels += 1;
    }
    assert_eq!(levels, MAX_DEPTH);
    assert!(all[1].is("b", ns::CLIENT));
}

#[test]
fn nesting_deeper_than_max_depth_is_a_policy_violation() {
    // Element trees are dropped and serialised recursively: a peer must not be able
    // to overflow the stack with one deep stanza, whatever max_stanza_size allows.
    let too_deep = XmlError::PolicyViolation {
        limit: MAX_DEPTH,
        exceeded: ExceededLimit::Depth,
    };
    for last in ["<a>", "<a/>"] {
        let input = format!("{HEADER}{}{last}", "<a>".repeat(MAX_DEPTH));
        assert_eq!(parse(&input).error, Some(too_deep.clone()), "{last}");
    }
    let input = format!("{HEADER}{}", "<a>".repeat(100_000));
    let out = parse_with(input.as_bytes(), limit(1 << 20));
    assert_eq!(out.error, Some(too_deep));
}

#[test]
fn more_than_max_attrs_is_a_policy_violation() {
    let attrs = |n: usize| (0..n).map(|i| format!(" a{i}=''")).collect::<String>();
    let e = element(&format!("<m{}/>", attrs(MAX_ATTRS)));
    assert_eq!(e.attrs().count(), MAX_ATTRS);
    let e = parse(&format!("{HEADER}<m{}/>", attrs(MAX_ATTRS + 1))).error;
    assert_eq!(
        e,
        Some(XmlError::PolicyViolation {
            limit: MAX_ATTRS,
            exceeded: ExceededLimit::Attributes,
        })
    );
}

#[test]
fn more_than_max_namespaces_in_scope_is_a_policy_violation() {
    // The header declares two; nested elements add one each.
    let nest = |n: usize| (0..n).map(|i| format!("<a xmlns:p{i}='u'>")).collect::<String>();
    let out = parse(&format!("{HEADER}{}<p0:b/>", nest(MAX_NAMESPACES - 2)));
    assert_eq!(out.error, None);
    let out = parse(&format!("{HEADER}{}", nest(MAX_NAMESPACES - 1)));
    assert_eq!(
        out.error,
        Some(XmlError::PolicyViolation {
            limit: MAX_NAMESPACES,
            exceeded: ExceededLimit::Namespaces,
        })
    );
    // Declarations of closed elements go out of scope.
    let siblings = "<a xmlns:p='u'/>".repeat(2 * MAX_NAMESPACES);
    assert_eq!(elements(&format!("<r>{siblings}</r>")).len(), 1);
}

#[test]
fn unlimited_stanza_size() {
    // MongooseIM's max_stanza_size defaults to infinity; usize::MAX stands for it.
    let out = parse_limited(&format!("{HEADER}{}<a/>", long_stanza()), limit(usize::MAX));
    assert_eq!(out.error, None);
    assert_eq!(out.events.len(), 3);
}

#[test]
fn oversized_header_is_a_policy_violation() {
    let e = parse_limited(&HEADER.replace("localhost", &"h".repeat(200)), limit(100)).error;
    assert_eq!(e, Some(too_big(100)));
    let e = parse_limited(&format!("<?xml version='1.0'{}?>", " ".repeat(200)), limit(100)).error;
    assert_eq!(e, Some(too_big(100)));
}

#[test]
fn error_is_sticky() {
    let mut p = StreamParser::new(ParseLimits::default());
    p.feed(HEADER.as_bytes());
    p.feed(b"<a><!-- x --></a>");
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    let e = p.next_event();
    assert!(matches!(e, Err(XmlError::RestrictedXml(_))));
    p.feed(b"<presence/>");
    assert_eq!(p.next_event(), e);
    assert_eq!(p.next_event(), e);
}
