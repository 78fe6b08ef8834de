//! Recorded sessions: client bytes in (with virtual time between them) and the
//! server's bytes out after each step, in a line format a reviewer can read:
//!
//! ```text
//! seed 41
//! user alice@localhost alice-pw
//! > <stream:stream ...>        client bytes
//! < <?xml version='1.0'?>...   server bytes after that step
//! @ 61000                      advance the virtual clock (ms)
//! ```
//! Backslash, CR and LF are escaped as `\\`, `\r`, `\n`.

use std::time::Duration;

use crate::Simulation;

/// One step of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The client sends these bytes; the server answers with `expect`.
    Send {
        /// Client bytes.
        input: Vec<u8>,
        /// Server bytes after them.
        expect: Vec<u8>,
    },
    /// Virtual time passes; the server writes `expect` meanwhile.
    Advance {
        /// How long.
        by: Duration,
        /// Server bytes written.
        expect: Vec<u8>,
    },
}

/// A whole recorded session of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Seed of the simulation.
    pub seed: u64,
    /// Accounts to create first: (JID, password).
    pub users: Vec<(String, String)>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Recording {
    /// Parses the line format.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rec = Recording {
            seed: 0,
            users: Vec::new(),
            steps: Vec::new(),
        };
        let mut pending: Option<Step> = None;
        for (n, line) in text.lines().enumerate() {
            let (tag, rest) = line.split_at_checked(2).unwrap_or((line, ""));
            match tag.trim_end() {
                "#" | "" => {}
                "se" if line.starts_with("seed ") => {
                    rec.seed = line[5..]
                        .trim()
                        .parse()
                        .map_err(|e| format!("line {}: {e}", n + 1))?;
                }
                "us" if line.starts_with("user ") => {
                    let mut parts = line[5..].split(' ');
                    let (Some(j), Some(p)) = (parts.next(), parts.next()) else {
                        return Err(format!("line {}: user JID PASSWORD", n + 1));
                    };
                    rec.users.push((j.into(), p.into()));
                }
                ">" => {
                    rec.steps.extend(pending.take());
                    pending = Some(Step::Send {
                        input: unescape(rest),
                        expect: Vec::new(),
                    });
                }
                "@" => {
                    rec.steps.extend(pending.take());
                    let ms: u64 = rest.trim().parse().map_err(|e| format!("line {}: {e}", n + 1))?;
                    pending = Some(Step::Advance {
                        by: Duration::from_millis(ms),
                        expect: Vec::new(),
                    });
                }
                "<" => match &mut pending {
                    Some(Step::Send { expect, .. } | Step::Advance { expect, .. }) => {
                        expect.extend(unescape(rest))
                    }
                    None => return Err(format!("line {}: output before any input", n + 1)),
                },
                _ => return Err(format!("line {}: unknown line {line:?}", n + 1)),
            }
        }
        rec.steps.extend(pending);
        Ok(rec)
    }

    /// Renders the line format.
    pub fn render(&self) -> String {
        let mut s = format!("# meerkat recorded session\nseed {}\n", self.seed);
        for (j, p) in &self.users {
            s.push_str(&format!("user {j} {p}\n"));
        }
        for step in &self.steps {
            let (head, expect) = match step {
                Step::Send { input, expect } => (format!("> {}", escape(input)), expect),
                Step::Advance { by, expect } => (format!("@ {}", by.as_millis()), expect),
            };
            s.push_str(&head);
            s.push('\n');
            if !expect.is_empty() {
                s.push_str(&format!("< {}\n", escape(expect)));
            }
        }
        s
    }

    /// A fresh simulation with this recording's seed and users.
    pub fn simulation(&self) -> Simulation {
        self.simulation_sharded(1)
    }

    /// The same, with the hub split into `shards` shards.
    pub fn simulation_sharded(&self, shards: usize) -> Simulation {
        let hub = meerkat_engine::hub::HubConfig {
            shards,
            ..Default::default()
        };
        let config = meerkat_engine::stream::c2s::C2sConfig::new(vec!["localhost".into()]);
        let mut sim = Simulation::new(config, hub, self.seed);
        for (j, p) in &self.users {
            sim.add_user(j, p);
        }
        sim
    }

    /// Replays the session, feeding each client input in the pieces `split` chooses
    /// (a list of piece lengths per step; `None` feeds it whole), and returns the
    /// server's output after each step.
    pub fn replay(&self, split: impl Fn(usize, usize) -> Vec<usize>) -> Vec<Vec<u8>> {
        self.replay_sharded(1, split)
    }

    /// [`Recording::replay`] against a hub split into `shards` shards.
    pub fn replay_sharded(&self, shards: usize, split: impl Fn(usize, usize) -> Vec<usize>) -> Vec<Vec<u8>> {
        let mut sim = self.simulation_sharded(shards);
        let id = sim.connect();
        let mut outputs = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Send { input, .. } => {
                    let mut rest = &input[..];
                    for len in split(i, input.len()) {
                        let len = len.min(rest.len());
                        sim.client_bytes(id, &rest[..len]);
                        rest = &rest[len..];
                    }
                    if !rest.is_empty() {
                        sim.client_bytes(id, rest);
                    }
                }
                Step::Advance { by, .. } => sim.advance(*by),
            }
            outputs.push(sim.take_output(id));
        }
        outputs
    }

    /// The outputs the recording expects, step by step.
    pub fn expected(&self) -> Vec<Vec<u8>> {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Send { expect, .. } | Step::Advance { expect, .. } => expect.clone(),
            })
            .collect()
    }
}

fn escape(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        let rec = Recording {
            seed: 9,
            users: vec![("a@localhost".into(), "pw".into())],
            steps: vec![
                Step::Send {
                    input: b"<a>\\\n</a>".to_vec(),
                    expect: b"<b/>".to_vec(),
                },
                Step::Advance {
                    by: Duration::from_millis(1500),
                    expect: b" ".to_vec(),
                },
                Step::Send {
                    input: b"x".to_vec(),
                    expect: Vec::new(),
                },
            ],
        };
        assert_eq!(Recording::parse(&rec.render()).unwrap(), rec);
    }
}
