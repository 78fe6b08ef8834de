//! What the loadgen's test binaries share.

/// The number after `"key":` inside the object that follows `"section":` (or the top level).
pub fn num(json: &str, section: &str, key: &str) -> f64 {
    let from = if section.is_empty() {
        0
    } else {
        json.find(&format!("\"{section}\":")).unwrap()
    };
    let pat = format!("\"{key}\":");
    let p = from
        + json[from..]
            .find(&pat)
            .unwrap_or_else(|| panic!("{key} in {section}"))
        + pat.len();
    let v: String = json[p..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    v.parse()
        .unwrap_or_else(|_| panic!("{key} in {section} is not a number"))
}
