//! A WebSocket opened with the session cookie ends with its session.
//!
//! [`tunnel_until`] copies bytes both ways, like the proxy's plain tunnel,
//! and follows the frames the upstream sends. When the session ends it
//! waits for the end of the frame in flight, sends the browser a Close
//! frame with the normal code (1000, "session expired"), passes on what
//! the browser still sends (its Close answer reaches the upstream, which
//! so sees a clean close), and ends both connections. An app reconnects
//! after a normal close; the new handshake carries the refreshed cookie
//! and is verified like any request.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How long the browser gets to answer the Close frame.
const CLOSING: Duration = Duration::from_secs(5);

/// Close frame, server to client (unmasked): code 1000, "session expired".
const CLOSE_FRAME: [u8; 19] = [
    0x88, 17, 0x03, 0xE8, b's', b'e', b's', b's', b'i', b'o', b'n', b' ', b'e', b'x', b'p', b'i',
    b'r', b'e', b'd',
];

/// Follows the frame boundaries of a WebSocket byte stream (RFC 6455 §5.2).
#[derive(Debug, Clone, Default)]
pub struct Frames {
    /// Header bytes of the frame being read (at most 14).
    header: Vec<u8>,
    /// Payload bytes left in the current frame.
    payload: u64,
}

impl Frames {
    /// Whether the stream is between two frames.
    pub fn at_boundary(&self) -> bool {
        self.header.is_empty() && self.payload == 0
    }

    /// Reads `bytes`; returns the offset of the first frame boundary in
    /// them (`Some(0)` when already at one), or `None` when they all belong
    /// to one unfinished frame.
    pub fn advance(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut first = self.at_boundary().then_some(0);
        let mut at = 0;
        while at < bytes.len() {
            if self.payload > 0 {
                let take = usize::try_from(self.payload)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - at);
                at += take;
                self.payload -= take as u64;
            } else {
                self.header.push(bytes[at]);
                at += 1;
                if let Some(payload) = payload_length(&self.header) {
                    self.header.clear();
                    self.payload = payload;
                }
            }
            if first.is_none() && self.at_boundary() {
                first = Some(at);
            }
        }
        first
    }
}

/// The payload length of a complete frame header, `None` while incomplete.
fn payload_length(header: &[u8]) -> Option<u64> {
    if header.len() < 2 {
        return None;
    }
    let masked = header[1] & 0x80 != 0;
    let mask = if masked { 4 } else { 0 };
    let (extended, length) = match header[1] & 0x7F {
        126 => (2, None),
        127 => (8, None),
        short => (0, Some(u64::from(short))),
    };
    if header.len() < 2 + extended + mask {
        return None;
    }
    Some(length.unwrap_or_else(|| {
        header[2..2 + extended]
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b))
    }))
}

/// Copies between `client` and `upstream` until either ends, or until
/// `closes_at`, when the client gets a normal Close. See the [module
/// docs](self).
pub async fn tunnel_until<C, U>(client: C, upstream: U, closes_at: Instant)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let mut from_client = std::pin::pin!(async {
        let copied = tokio::io::copy(&mut client_read, &mut upstream_write).await;
        let _ = upstream_write.shutdown().await;
        copied
    });

    let mut frames = Frames::default();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut expired = false;
    loop {
        tokio::select! {
            _ = &mut from_client => return,
            () = tokio::time::sleep_until(closes_at), if !expired => {
                expired = true;
                if frames.at_boundary() {
                    break;
                }
            }
            read = upstream_read.read(&mut buffer) => {
                let Ok(read) = read else { return };
                if read == 0 {
                    let _ = client_write.shutdown().await;
                    // The browser may still be sending; let it finish.
                    let _ = tokio::time::timeout(CLOSING, &mut from_client).await;
                    return;
                }
                let boundary = frames.advance(&buffer[..read]);
                let end = match boundary {
                    // The session is over: up to the end of this frame.
                    Some(boundary) if expired => boundary,
                    _ => read,
                };
                if client_write.write_all(&buffer[..end]).await.is_err() {
                    return;
                }
                if expired && boundary.is_some() {
                    break;
                }
            }
        }
    }
    tracing::debug!(target: "meingpt_gateway::embed", "session over: closing the WebSocket");
    if client_write.write_all(&CLOSE_FRAME).await.is_err() {
        return;
    }
    let _ = client_write.flush().await;
    // The browser answers Close and hangs up; its Close goes upstream.
    let _ = tokio::time::timeout(CLOSING, &mut from_client).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_found_across_reads() {
        let mut frames = Frames::default();
        assert!(frames.at_boundary());
        // A text frame "hi" and the header of a 300-byte binary frame.
        let first = [0x81, 2, b'h', b'i', 0x82, 126, 0x01];
        assert_eq!(frames.advance(&first), Some(0));
        assert!(!frames.at_boundary());
        let mut second = vec![0x2C];
        second.extend(std::iter::repeat_n(0u8, 300));
        second.extend_from_slice(&[0x89, 0]);
        // The binary frame ends after 301 bytes; a ping follows.
        assert_eq!(frames.advance(&second), Some(301));
        assert!(frames.at_boundary());
    }

    #[test]
    fn a_frame_split_inside_its_payload_has_no_boundary_until_it_ends() {
        let mut frames = Frames::default();
        assert_eq!(frames.advance(&[0x81, 5, b'a', b'b']), Some(0));
        let mut in_frame = Frames::default();
        in_frame.advance(&[0x81, 5, b'a']);
        assert_eq!(in_frame.advance(b"bc"), None);
        assert_eq!(in_frame.advance(&[b'd', b'e', 0x81]), Some(2));
    }

    #[test]
    fn masked_frames_and_long_lengths_are_read() {
        let mut frames = Frames::default();
        let mut frame = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        frame.extend(std::iter::repeat_n(7u8, 65_536));
        frames.advance(&frame[..1]);
        assert_eq!(frames.advance(&frame[1..]), Some(frame.len() - 1));
    }

    #[test]
    fn the_close_frame_says_normal_closure() {
        assert_eq!(CLOSE_FRAME[0], 0x88);
        assert_eq!(usize::from(CLOSE_FRAME[1]), CLOSE_FRAME.len() - 2);
        assert_eq!(u16::from_be_bytes([CLOSE_FRAME[2], CLOSE_FRAME[3]]), 1000);
        assert_eq!(&CLOSE_FRAME[4..], b"session expired");
    }
}
