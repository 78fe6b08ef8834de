//! Readable transcripts of a conversation (`C:` client, `S:` server), for snapshots.

/// A conversation log.
#[derive(Default)]
pub struct Transcript {
    lines: Vec<String>,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the client sent.
    pub fn client(&mut self, text: &str) {
        self.lines.push(format!("C: {text}"));
    }

    /// What the server sent (ignored when empty).
    pub fn server(&mut self, text: &str) {
        if !text.is_empty() {
            self.lines.push(format!("S: {text}"));
        }
    }

    /// A note for the reader (`--` prefixed), e.g. "TLS handshake".
    pub fn note(&mut self, text: &str) {
        self.lines.push(format!("-- {text}"));
    }

    /// The whole transcript.
    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}
