//! The WebSocket protocol (RFC 6455) as XMPP needs it (RFC 7395): the opening
//! handshake's answer, the decoder of client frames (masked, possibly fragmented,
//! with control frames between fragments) and the encoder of server frames.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: the GUID appended to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// RFC 6455 §4.2.2: `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.trim().as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A continuation fragment.
    Continuation = 0,
    /// A text frame (RFC 7395 §3.2: XMPP uses only these).
    Text = 1,
    /// A binary frame.
    Binary = 2,
    /// Connection close.
    Close = 8,
    /// Ping.
    Ping = 9,
    /// Pong.
    Pong = 10,
}

/// RFC 6455 §7.4.1 status codes we send.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Going away (server shutting down, idle timeout).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Data of a type we do not accept (binary frames, RFC 7395 §3.2).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
}

/// Something the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A complete text message.
    Message(Vec<u8>),
    /// A ping, to answer with a pong carrying the same data.
    Ping(Vec<u8>),
    /// A pong (an answer to our ping).
    Pong,
    /// The client closes, with its status code if it gave one.
    Close(Option<u16>),
}

/// Why the client's frames end the connection: the status code to close with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("WebSocket protocol violation (close code {0})")]
pub struct WsViolation(pub u16);

/// The decoder of one connection's client frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// The message being reassembled from fragments, if one is.
    message: Option<Vec<u8>>,
    max_message: usize,
}

impl FrameDecoder {
    /// A decoder refusing messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            message: None,
            max_message,
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next event; `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<WsEvent>, WsViolation> {
        loop {
            let Some((fin, opcode, payload)) = self.next_frame()? else {
                return Ok(None);
            };
            match opcode {
                0x8 => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(WsEvent::Close(code)));
                }
                0x9 => return Ok(Some(WsEvent::Ping(payload))),
                0xA => return Ok(Some(WsEvent::Pong)),
                0x2 => return Err(WsViolation(close_code::UNSUPPORTED_DATA)),
                0x1 if self.message.is_some() => return Err(WsViolation(close_code::PROTOCOL_ERROR)),
                0x0 if self.message.is_none() => return Err(WsViolation(close_code::PROTOCOL_ERROR)),
                0x0 | 0x1 => {
                    let message = self.message.get_or_insert_with(Vec::new);
                    if message.len() + payload.len() > self.max_message {
                        return Err(WsViolation(close_code::TOO_BIG));
                    }
                    message.extend_from_slice(&payload);
                    if fin {
                        let message = self.message.take().unwrap_or_default();
                        if std::str::from_utf8(&message).is_err() {
                            return Err(WsViolation(close_code::INVALID_PAYLOAD));
                        }
                        return Ok(Some(WsEvent::Message(message)));
                    }
                }
                _ => return Err(WsViolation(close_code::PROTOCOL_ERROR)),
            }
        }
    }

    /// One frame, unmasked: (FIN, opcode, payload).
    fn next_frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, WsViolation> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            // RFC 6455 §5.2: no extension was negotiated, so no RSV bit may be set.
            return Err(WsViolation(close_code::PROTOCOL_ERROR));
        }
        let opcode = b[0] & 0x0F;
        if b[1] & 0x80 == 0 {
            // §5.1: a client MUST mask every frame.
            return Err(WsViolation(close_code::PROTOCOL_ERROR));
        }
        let (len, mut at) = match b[1] & 0x7F {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (u64::from(n), 2),
        };
        let control = opcode & 0x8 != 0;
        if control && (len > 125 || !fin) {
            // §5.5: control frames are short and never fragmented.
            return Err(WsViolation(close_code::PROTOCOL_ERROR));
        }
        if len > self.max_message as u64 {
            return Err(WsViolation(close_code::TOO_BIG));
        }
        let len = len as usize;
        if b.len() < at + 4 + len {
            return Ok(None);
        }
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        at += 4;
        let mut payload = b[at..at + len].to_vec();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        self.buf.drain(..at + len);
        Ok(Some((fin, opcode, payload)))
    }
}

/// A server frame (unmasked, RFC 6455 §5.1), appended to `out`.
pub fn encode_frame(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | opcode as u8);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// A close frame with `code` (RFC 6455 §5.5.1).
pub fn encode_close(code: u16, out: &mut Vec<u8>) {
    encode_frame(Opcode::Close, &code.to_be_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a fixed key.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(input: &[u8], piece: usize) -> Result<Vec<WsEvent>, WsViolation> {
        let mut d = FrameDecoder::new(1 << 20);
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            d.feed(chunk);
            while let Some(e) = d.next_event()? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// RFC 6455 §1.3's example key and answer.
    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    /// A fragmented message with a ping between its fragments, a 16-bit length and
    /// a close, the same whatever the split.
    #[test]
    fn fragments_control_frames_and_lengths() {
        let long = "x".repeat(300);
        let mut input = client_frame(false, 1, b"<message>");
        input.extend(client_frame(true, 9, b"hb"));
        input.extend(client_frame(true, 0, b"</message>"));
        input.extend(client_frame(true, 1, long.as_bytes()));
        input.extend(client_frame(true, 8, &1000u16.to_be_bytes()));
        let want = vec![
            WsEvent::Ping(b"hb".to_vec()),
            WsEvent::Message(b"<message></message>".to_vec()),
            WsEvent::Message(long.clone().into_bytes()),
            WsEvent::Close(Some(1000)),
        ];
        for piece in 1..=input.len() {
            assert_eq!(decode_all(&input, piece).unwrap(), want, "pieces of {piece}");
        }
    }

    #[test]
    fn violations_have_their_close_codes() {
        let unmasked = [0x81, 0x01, b'a'];
        assert_eq!(
            decode_all(&unmasked, 3),
            Err(WsViolation(close_code::PROTOCOL_ERROR))
        );
        assert_eq!(
            decode_all(&client_frame(true, 2, b"bin"), 64),
            Err(WsViolation(close_code::UNSUPPORTED_DATA))
        );
        assert_eq!(
            decode_all(&client_frame(true, 1, &[0xff, 0xfe]), 64),
            Err(WsViolation(close_code::INVALID_PAYLOAD))
        );
        assert_eq!(
            decode_all(&client_frame(false, 9, b"x"), 64),
            Err(WsViolation(close_code::PROTOCOL_ERROR))
        );
        assert_eq!(
            decode_all(&client_frame(true, 0, b"orphan"), 64),
            Err(WsViolation(close_code::PROTOCOL_ERROR))
        );
        let mut d = FrameDecoder::new(10);
        d.feed(&client_frame(true, 1, b"more than ten bytes"));
        assert_eq!(d.next_event(), Err(WsViolation(close_code::TOO_BIG)));
    }

    #[test]
    fn server_frames_are_unmasked_with_the_shortest_length() {
        let mut out = Vec::new();
        encode_frame(Opcode::Text, b"<open/>", &mut out);
        assert_eq!(out[..2], [0x81, 7]);
        let mut out = Vec::new();
        encode_frame(Opcode::Text, &[b'a'; 200], &mut out);
        assert_eq!(out[..4], [0x81, 126, 0, 200]);
        let mut out = Vec::new();
        encode_frame(Opcode::Text, &vec![b'a'; 70_000], &mut out);
        assert_eq!(out[..2], [0x81, 127]);
        assert_eq!(out.len(), 10 + 70_000);
    }
}
