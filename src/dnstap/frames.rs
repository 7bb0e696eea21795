//! Frame Streams (the fstrm protocol), the bidirectional handshake (data frames are
//! written by `proto::write_frame`):
//! a data frame is its length (big-endian u32, never 0) and its bytes; a control frame is
//! an escape (a zero length), its own length, its type, and fields (a content type).
//! The writer sends READY with the content type it offers, the reader answers ACCEPT
//! with the one it takes, the writer sends START, data frames, and at the end STOP; the
//! reader answers FINISH.

use std::io::{self, Read, Write};

const ACCEPT: u32 = 0x01;
const START: u32 = 0x02;
const STOP: u32 = 0x03;
const READY: u32 = 0x04;
const FINISH: u32 = 0x05;
const FIELD_CONTENT_TYPE: u32 = 0x01;
/// The largest control frame read (fstrm's own limit is 512 bytes).
const MAX_CONTROL: u32 = 512;

fn control(w: &mut dyn Write, kind: u32, content_type: Option<&[u8]>) -> io::Result<()> {
    let fields = content_type.map_or(0, |c| 8 + c.len());
    let len = u32::try_from(4 + fields).map_err(|_| io::ErrorKind::InvalidInput)?;
    w.write_all(&0u32.to_be_bytes())?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&kind.to_be_bytes())?;
    if let Some(c) = content_type {
        let n = u32::try_from(c.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        w.write_all(&FIELD_CONTENT_TYPE.to_be_bytes())?;
        w.write_all(&n.to_be_bytes())?;
        w.write_all(c)?;
    }
    Ok(())
}

pub(super) fn handshake(w: &mut dyn Write, content_type: &[u8]) -> io::Result<()> {
    control(w, READY, Some(content_type))?;
    w.flush()
}

pub(super) fn start(w: &mut dyn Write, content_type: &[u8]) -> io::Result<()> {
    control(w, START, Some(content_type))
}

pub(super) fn stop(w: &mut dyn Write) -> io::Result<()> {
    control(w, STOP, None)
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("Frame Streams: {why}"))
}

/// Reads one control frame: its type and its content types.
fn read_control(r: &mut dyn Read) -> io::Result<(u32, Vec<Vec<u8>>)> {
    let mut word = [0u8; 4];
    r.read_exact(&mut word)?;
    if u32::from_be_bytes(word) != 0 {
        return Err(bad("expected a control frame, got data"));
    }
    r.read_exact(&mut word)?;
    let len = u32::from_be_bytes(word);
    if !(4..=MAX_CONTROL).contains(&len) {
        return Err(bad("control frame of an impossible length"));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    let kind = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let mut types = Vec::new();
    let mut at = 4;
    while at + 8 <= body.len() {
        let field = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        let n =
            u32::from_be_bytes([body[at + 4], body[at + 5], body[at + 6], body[at + 7]]) as usize;
        at += 8;
        let value = body.get(at..at + n).ok_or_else(|| bad("truncated field"))?;
        if field == FIELD_CONTENT_TYPE {
            types.push(value.to_vec());
        }
        at += n;
    }
    Ok((kind, types))
}

/// Waits for the reader's ACCEPT of `content_type`.
pub(super) fn expect_accept(r: &mut dyn Read, content_type: &[u8]) -> io::Result<()> {
    let (kind, types) = read_control(r)?;
    if kind != ACCEPT {
        return Err(bad(&format!("expected ACCEPT, got control type {kind}")));
    }
    // A reader that names no content type accepts what was offered.
    if !types.is_empty() && !types.iter().any(|t| t == content_type) {
        return Err(bad("the collector does not accept dnstap"));
    }
    Ok(())
}

/// Waits for the reader's FINISH after STOP.
pub(super) fn expect_finish(r: &mut dyn Read) -> io::Result<()> {
    match read_control(r)? {
        (FINISH, _) => Ok(()),
        (kind, _) => Err(bad(&format!("expected FINISH, got control type {kind}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_have_the_documented_layout() {
        let mut out = Vec::new();
        handshake(&mut out, b"protobuf:dnstap.Dnstap").unwrap();
        // escape, length 4 + 8 + 22, READY, content-type field of 22 bytes.
        assert_eq!(&out[..12], &[0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 4]);
        assert_eq!(&out[12..20], &[0, 0, 0, 1, 0, 0, 0, 22]);
        assert_eq!(&out[20..], b"protobuf:dnstap.Dnstap");
        // An ACCEPT the way fstrm writes it is read back; anything else is refused.
        let mut accept = Vec::new();
        control(&mut accept, ACCEPT, Some(b"protobuf:dnstap.Dnstap")).unwrap();
        expect_accept(&mut accept.as_slice(), b"protobuf:dnstap.Dnstap").unwrap();
        let mut other = Vec::new();
        control(&mut other, ACCEPT, Some(b"protobuf:other")).unwrap();
        assert!(expect_accept(&mut other.as_slice(), b"protobuf:dnstap.Dnstap").is_err());
        // A data frame (its length, then its bytes) where a control frame belongs.
        let data_frame = [0u8, 0, 0, 1, b'x'];
        assert!(expect_accept(&mut data_frame.as_slice(), b"protobuf:dnstap.Dnstap").is_err());
    }
}
