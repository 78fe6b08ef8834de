//! The TOML config parser fed arbitrary text: it never panics, and a config it
//! refuses gets an error that names the file and says what is wrong, as an operator
//! would read it.

use meerkat::config::{Config, ConfigOrigin};

/// Panics if the parser panics or refuses the input without a usable message.
pub fn config_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, ConfigOrigin::File("fuzz.toml".into())) {
        Ok(config) => {
            // A config that parses serves at least one host.
            assert!(
                !config.hosts.is_empty(),
                "accepted a config without hosts: {text:?}"
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with("config error in fuzz.toml")
                    && message.len() > "config error in fuzz.toml".len() + 2,
                "an error an operator cannot act on: {message:?} for {text:?}"
            );
        }
    }
}
