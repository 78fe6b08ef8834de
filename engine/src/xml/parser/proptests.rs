//! Property tests: any split of the input gives exactly the same events (and the same
//! error), mutated input never panics and stays split-independent, and random element
//! trees written in any legal wire form parse back to themselves.

use proptest::prelude::*;
use proptest::sample::Index;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::tests::{parse_pieces, parse_with, Outcome, HEADER};
use super::*;
use crate::ns;
use crate::xml::Node;

/// A client stream as real clients write it: declaration, header, features, stanzas with
/// nested namespaces, prefixes, escapes, CDATA, `>` and quotes in attribute values,
/// multi-byte UTF-8, whitespace keepalives, and the close.
const REALISTIC: &str = "<?xml version='1.0' encoding='UTF-8'?>\n\
<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
to='example.com' version='1.0' xml:lang='en' id='s1'>\n  \
<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>\
<mechanism>PLAIN</mechanism></mechanisms></stream:features>\n \n\n\
<message to='juliet@example.com/balcony' from=\"romeo@example.net/orchard\" type='chat' \
id='m&amp;1' note='a > b, \"quoted\" and &apos;single&apos;'>\n  \
<body>Art thou not Romeo, &amp; a Montague? 1 &lt; 2 &gt; 0 &#x263A;&#9731; é 😀</body>\n  \
<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>\
<p style=\"font-weight:bold\">hi<br/>there</p></body></html>\n  \
<x:data xmlns:x='jabber:x:data' x:type='form'><x:field var='a'><x:value>\
<![CDATA[<not> & markup ]] > ]]></x:value></x:field></x:data>\n  \
<thread parent='e0ffe42b28561960c6b12b944a092794b9683a38'>0e3141cd80894871a68e6fe6b1ec56fa\
</thread>\n</message>\n \n\
<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
<resource>balcony</resource></bind></iq>\n\t \n\
<presence xml:lang=\"fr\"><status>Très occupé — 忙しい\r\nline2</status>\
<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org' \
ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>   \
<r xmlns='urn:xmpp:sm:3'/>\n</stream:stream>\n";

/// An input that ends in an error, and which kind of error.
struct ErrorCase {
    input: Vec<u8>,
    limits: ParseLimits,
    is_expected: fn(&XmlError) -> bool,
}

/// Inputs that end in each kind of error, after a valid start.
fn error_cases() -> Vec<ErrorCase> {
    let nwf: fn(&XmlError) -> bool = |e| matches!(e, XmlError::NotWellFormed(_));
    let restricted: fn(&XmlError) -> bool = |e| matches!(e, XmlError::RestrictedXml(_));
    let policy: fn(&XmlError) -> bool = |e| matches!(e, XmlError::PolicyViolation { .. });
    let start = &REALISTIC[..REALISTIC.find("<iq").unwrap_or(0)];
    let after = |tail: &[u8]| [start.as_bytes(), tail].concat();
    let default = ParseLimits::default();
    let case = |input, limits, is_expected| ErrorCase {
        input,
        limits,
        is_expected,
    };
    vec![
        case(after(b"<message><body></message>"), default, nwf),
        case(after(b"<body>caf\xc3(</body>"), default, nwf),
        case(after(b"<a b='1' b='2'/>"), default, nwf),
        case(after(b"<a><foo:b/></a>"), default, nwf),
        case(after(b"text at the top"), default, nwf),
        case(after(b"<a b=1/>"), default, nwf),
        case(after(b"<a b='<'/>"), default, nwf),
        case(after(b"<a>]]></a>"), default, nwf),
        case(after(b"<a>\x01</a>"), default, nwf),
        case(after(b"<a>&#0;</a>"), default, nwf),
        case(after(b"</stream:stream> <stream:stream>"), default, nwf),
        case(after(b"</stream:features>"), default, nwf),
        case(after("<a>".repeat(MAX_DEPTH + 1).as_bytes()), default, policy),
        case(
            after(format!("<a{}/>", " b=''".repeat(MAX_ATTRS + 1)).as_bytes()),
            default,
            policy,
        ),
        case(after(b"<message><!-- hidden --></message>"), default, restricted),
        case(after(b"<message><?target data?></message>"), default, restricted),
        case(after(b"<body>&nbsp;</body>"), default, restricted),
        case(after(b"<!DOCTYPE x>"), default, restricted),
        case(
            format!("<!DOCTYPE stream>{HEADER}").into_bytes(),
            default,
            restricted,
        ),
        case(
            after(format!("<message><body>{}", "x".repeat(600)).as_bytes()),
            ParseLimits { max_stanza_size: 512 },
            policy,
        ),
        case(
            HEADER.replace("localhost", &"h".repeat(600)).into_bytes(),
            ParseLimits { max_stanza_size: 512 },
            policy,
        ),
    ]
}

/// Sorted cut positions inside an input of `len` bytes.
fn cuts_for(indices: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = indices.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn realistic_stream_events() {
    let out = parse_with(REALISTIC.as_bytes(), ParseLimits::default());
    assert_eq!(out.error, None);
    let names: Vec<_> = out
        .events
        .iter()
        .map(|e| match e {
            StreamEvent::Header(h) => format!("header {}", h.name),
            StreamEvent::Element(e, _) => format!("{} {}", e.name(), e.ns()),
            StreamEvent::Close => "close".into(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "header stream",
            "features http://etherx.jabber.org/streams",
            "message jabber:client",
            "iq jabber:client",
            "presence jabber:client",
            "r urn:xmpp:sm:3",
            "close",
        ]
    );
    let StreamEvent::Element(message, _) = &out.events[2] else {
        panic!("no message")
    };
    assert_eq!(message.attr("note"), Some("a > b, \"quoted\" and 'single'"));
    let data = message.get_child("data", "jabber:x:data").expect("x:data");
    assert_eq!(data.attr("x:type"), Some("form"));
    let value = data.children().next().and_then(|f| f.children().next());
    assert_eq!(value.map(Element::text).as_deref(), Some("<not> & markup ]] > "));
    for case in error_cases() {
        let error = parse_with(&case.input, case.limits).error.expect("an error");
        let input = String::from_utf8_lossy(&case.input);
        assert!((case.is_expected)(&error), "{input:?}: {error:?}");
    }
}

proptest! {
    #[test]
    fn any_split_gives_the_same_events(indices in prop::collection::vec(any::<Index>(), 0..64)) {
        let input = REALISTIC.as_bytes();
        let whole = parse_with(input, ParseLimits::default());
        let pieces = parse_pieces(input, &cuts_for(&indices, input.len()), ParseLimits::default());
        prop_assert_eq!(pieces, whole);
    }

    #[test]
    fn any_split_gives_the_same_error(
        case in any::<Index>(),
        indices in prop::collection::vec(any::<Index>(), 0..64),
    ) {
        let cases = error_cases();
        let ErrorCase { input, limits, is_expected } = &cases[case.index(cases.len())];
        let whole = parse_with(input, *limits);
        prop_assert!(whole.error.as_ref().is_some_and(is_expected));
        let pieces = parse_pieces(input, &cuts_for(&indices, input.len()), *limits);
        prop_assert_eq!(pieces, whole);
    }

    /// Damaged input: never a panic, and still the same outcome whatever the split.
    #[test]
    fn mutated_streams_are_split_independent(
        edits in prop::collection::vec(
            (any::<Index>(), prop::sample::select(&b"<>/='\"&;#!?-[] \n\rax:\xc3\xa9\x00\xff"[..])),
            1..6,
        ),
        indices in prop::collection::vec(any::<Index>(), 0..32),
    ) {
        let mut input = REALISTIC.as_bytes().to_vec();
        for (at, byte) in edits {
            let at = at.index(input.len() + 1);
            if at % 2 == 0 && at < input.len() {
                input[at] = byte;
            } else {
                input.insert(at, byte);
            }
        }
        let limits = ParseLimits::default();
        let whole = parse_with(&input, limits);
        let pieces = parse_pieces(&input, &cuts_for(&indices, input.len()), limits);
        prop_assert_eq!(pieces, whole);
    }

    /// Random trees, written with random (legal) quoting, escaping, CDATA, whitespace,
    /// prefixes and empty-element forms, parse back to themselves.
    #[test]
    fn written_trees_parse_back(
        trees in prop::collection::vec(element_tree(), 1..4),
        seed in any::<u64>(),
        indices in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut input = String::from(HEADER);
        for tree in &trees {
            write_element(&mut input, tree, ns::CLIENT, &mut rng, &mut 0);
            input.push_str(["", " ", "\n", "\r\n\t"][pick(&mut rng, 4)]);
        }
        let input = input.into_bytes();
        let out = parse_pieces(&input, &cuts_for(&indices, input.len()), ParseLimits::default());
        prop_assert_eq!(out.error, None);
        let parsed: Vec<&Element> = out.events.iter().filter_map(|e| match e {
            StreamEvent::Element(e, _) => Some(e),
            _ => None,
        }).collect();
        prop_assert_eq!(parsed, trees.iter().collect::<Vec<_>>());
    }
}

fn text_strategy() -> impl Strategy<Value = String> {
    "[a-z <>&'\"\t\n\r\\]é😀]{0,12}"
}

fn element_tree() -> impl Strategy<Value = Element> {
    const NAMES: &[&str] = &["a", "b", "message", "body", "x-y", "z.1", "é", "_q"];
    const NAMESPACES: &[&str] = &["jabber:client", "urn:x", "urn:y:z", ""];
    const ATTR_NAMES: &[&str] = &["to", "from", "id", "type", "a", "b-c", "xml:lang"];
    let leaf = (
        prop::sample::select(NAMES),
        prop::sample::select(NAMESPACES),
        prop::collection::btree_map(prop::sample::select(ATTR_NAMES), text_strategy(), 0..3),
        text_strategy(),
    )
        .prop_map(|(name, ns, attrs, text)| {
            let mut e = Element::new(name, ns);
            for (n, v) in attrs {
                e.set_attr(n, v);
            }
            e.with_text(text)
        });
    leaf.prop_recursive(3, 24, 4, move |inner| {
        (
            inner.clone(),
            prop::collection::vec(
                prop_oneof![
                    inner.prop_map(Node::Element),
                    text_strategy().prop_map(Node::Text)
                ],
                0..4,
            ),
        )
            .prop_map(|(mut parent, nodes)| {
                for node in nodes {
                    match node {
                        Node::Element(e) => parent.push_child(e),
                        Node::Text(t) => parent.push_text(t),
                    }
                }
                parent
            })
    })
}

fn pick(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u32() as usize) % n
}

fn maybe_space(out: &mut String, rng: &mut ChaCha8Rng) {
    out.push_str(["", "", " ", "\n  ", "\t"][pick(rng, 5)]);
}

/// Writes `e` inside a parent whose default namespace is `default`, choosing randomly
/// among legal ways of writing each part.
fn write_element(out: &mut String, e: &Element, default: &str, rng: &mut ChaCha8Rng, prefixes: &mut usize) {
    let mut child_default = default.to_owned();
    let (qname, declaration) = if e.ns() == default && pick(rng, 3) > 0 {
        (e.name().to_owned(), String::new())
    } else if !e.ns().is_empty() && pick(rng, 2) == 0 {
        *prefixes += 1;
        let prefix = format!("p{prefixes}");
        (format!("{prefix}:{}", e.name()), format!("xmlns:{prefix}"))
    } else {
        e.ns().clone_into(&mut child_default);
        (e.name().to_owned(), "xmlns".to_owned())
    };
    out.push('<');
    out.push_str(&qname);
    let mut attrs: Vec<(&str, &str)> = e.attrs().collect();
    if !declaration.is_empty() {
        attrs.insert(pick(rng, attrs.len() + 1), (&declaration, e.ns()));
    }
    for (name, value) in attrs {
        out.push(' ');
        maybe_space(out, rng);
        out.push_str(name);
        maybe_space(out, rng);
        out.push('=');
        maybe_space(out, rng);
        let quote = ['\'', '"'][pick(rng, 2)];
        out.push(quote);
        for c in value.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '\t' => out.push_str("&#9;"),
                '\n' => out.push_str("&#xA;"),
                '\r' => out.push_str("&#13;"),
                c if c == quote => out.push_str(if c == '"' { "&quot;" } else { "&apos;" }),
                c => write_char(out, c, rng),
            }
        }
        out.push(quote);
    }
    maybe_space(out, rng);
    if e.nodes().is_empty() && pick(rng, 2) == 0 {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for node in e.nodes() {
        match node {
            Node::Element(child) => write_element(out, child, &child_default, rng, prefixes),
            Node::Text(text) => write_text(out, text, rng),
        }
    }
    out.push_str("</");
    out.push_str(&qname);
    maybe_space(out, rng);
    out.push('>');
}

/// Character data, cut into runs written as escaped text or CDATA sections.
fn write_text(out: &mut String, text: &str, rng: &mut ChaCha8Rng) {
    let chars: Vec<char> = text.chars().collect();
    for run in chars.chunks(1 + pick(rng, 6)) {
        let run: String = run.iter().collect();
        if !run.contains("]]>") && !run.contains('\r') && pick(rng, 3) == 0 {
            out.push_str("<![CDATA[");
            out.push_str(&run);
            out.push_str("]]>");
            continue;
        }
        for c in run.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                // `]]>` is not allowed in text: always escape `>`.
                '>' => out.push_str("&gt;"),
                '\r' => out.push_str("&#xD;"),
                c => write_char(out, c, rng),
            }
        }
    }
}

/// A character, literally or as a character reference.
fn write_char(out: &mut String, c: char, rng: &mut ChaCha8Rng) {
    match pick(rng, 6) {
        0 => out.push_str(&format!("&#{};", u32::from(c))),
        1 => out.push_str(&format!("&#x{:x};", u32::from(c))),
        _ => out.push(c),
    }
}

/// A megabyte of small stanzas fed one byte at a time must not be quadratic: this runs
/// in well under a second in release builds (a timing is not asserted).
#[test]
fn megabyte_stream_fed_one_byte_at_a_time() {
    let mut input = String::from(HEADER);
    let mut stanzas = 0;
    while input.len() < 1 << 20 {
        input.push_str(&format!(
            "<message to='juliet@example.com' id='{stanzas}'><body>hi &amp; bye</body></message>\n"
        ));
        stanzas += 1;
    }
    input.push_str("</stream:stream>");
    let mut p = StreamParser::new(ParseLimits::default());
    let mut out = Outcome {
        events: Vec::new(),
        error: None,
    };
    for byte in input.as_bytes() {
        p.feed(std::slice::from_ref(byte));
        while let Some(event) = p.next_event().expect("valid stream") {
            out.events.push(event);
        }
    }
    assert_eq!(out.events.len(), stanzas + 2);
    assert_eq!(out.events.last(), Some(&StreamEvent::Close));
    assert!(
        p.buffer_capacity() < 4096,
        "only the unfinished token is buffered"
    );
}
