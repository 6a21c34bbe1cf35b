//! Framing: `MAGIC | len: u32 LE | crc32(payload): u32 LE | payload`.
//!
//! The payload is a JSON-encoded [`GuestMessage`]. The decoder never trusts
//! the guest: it resynchronises on the magic after garbage, refuses lengths
//! over [`MAX_PAYLOAD`], drops records whose checksum or JSON is bad, and
//! counts what it dropped so the report can say the channel was damaged.

use super::GuestMessage;

const MAGIC: &[u8; 4] = b"\x7fKTS";
const HEADER: usize = MAGIC.len() + 8;
/// Largest payload the host accepts; bigger claims are treated as garbage.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Encodes one message as a frame.
pub fn encode(msg: &GuestMessage) -> Vec<u8> {
    let payload = serde_json::to_vec(msg).expect("GuestMessage always serialises");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Bytes the decoder may hash in vain (candidate frames whose checksum
/// fails) per byte of the stream so far. A damaged frame costs its length
/// once; a guest sending magic after magic, each claiming megabytes, would
/// otherwise have the host hash the same bytes again for every one of
/// them. Past the budget such a candidate is skipped unhashed (and counted
/// as damage); an honest stream never comes near it.
const HASH_BUDGET: u64 = 16;

/// Incremental decoder: feed bytes as they arrive, take messages out.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Offset in the stream of `buf[0]`.
    base: u64,
    /// Payload bytes hashed for frames whose checksum failed.
    hashed_in_vain: u64,
    /// Bytes skipped or records dropped because they did not decode.
    pub damaged_bytes: usize,
    pub damaged_frames: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes and returns every complete message now available.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<GuestMessage> {
        self.buf.extend_from_slice(bytes);
        self.decode(false)
    }

    /// Ends the stream: a frame still incomplete now never will be, so its
    /// claimed length was garbage. Skip past it and decode what follows.
    pub fn finish(&mut self) -> Vec<GuestMessage> {
        let out = self.decode(true);
        self.damaged_bytes += self.buf.len();
        self.base += self.buf.len() as u64;
        self.buf.clear();
        out
    }

    /// Decodes the frames in `buf`, leaving what may still complete (or,
    /// `at_end`, only a tail too short to hold a magic). One pass: every
    /// skip moves forward, and `buf` is drained once, at the end.
    fn decode(&mut self, at_end: bool) -> Vec<GuestMessage> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            // Resynchronise on the next magic.
            let Some(start) = find(&self.buf[pos..], MAGIC).map(|i| pos + i) else {
                // Keep a possible partial magic at the tail.
                let keep_from = self.buf.len().saturating_sub(MAGIC.len() - 1).max(pos);
                self.damaged_bytes += keep_from - pos;
                pos = keep_from;
                break;
            };
            self.damaged_bytes += start - pos;
            pos = start;
            if self.buf.len() - pos < HEADER {
                if at_end {
                    self.skip_frame(&mut pos);
                    continue;
                }
                break;
            }
            let len = u32::from_le_bytes(self.buf[pos + 4..pos + 8].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(self.buf[pos + 8..pos + 12].try_into().unwrap());
            if len > MAX_PAYLOAD {
                self.skip_frame(&mut pos);
                continue;
            }
            if self.buf.len() - pos - HEADER < len {
                if at_end {
                    self.skip_frame(&mut pos);
                    continue;
                }
                break;
            }
            let end = self.base + (pos + HEADER + len) as u64;
            if self.hashed_in_vain + len as u64 > end.saturating_mul(HASH_BUDGET) {
                self.skip_frame(&mut pos);
                continue;
            }
            let payload = &self.buf[pos + HEADER..pos + HEADER + len];
            if crc32fast::hash(payload) != crc {
                self.hashed_in_vain += len as u64;
                self.skip_frame(&mut pos);
                continue;
            }
            match serde_json::from_slice(payload) {
                Ok(msg) => out.push(msg),
                Err(_) => self.damaged_frames += 1,
            }
            pos += HEADER + len;
        }
        self.buf.drain(..pos);
        self.base += pos as u64;
        out
    }

    /// Bytes still buffered (an incomplete frame) when the stream ended.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }

    fn skip_frame(&mut self, pos: &mut usize) {
        self.damaged_frames += 1;
        self.damaged_bytes += 1;
        *pos += 1;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{LogStream, Stage};

    fn sample() -> Vec<GuestMessage> {
        vec![
            GuestMessage::Stage(Stage::InitStarted { kernel_release: "7.3.4".into() }),
            GuestMessage::SchedulerOutput { stream: LogStream::Stderr, line: "hello\n\u{7f}KTS".into() },
            GuestMessage::Exit { code: 0 },
        ]
    }

    #[test]
    fn round_trips_across_arbitrary_splits() {
        let bytes: Vec<u8> = sample().iter().flat_map(encode).collect();
        for chunk in [1, 3, 7, 64, bytes.len()] {
            let mut d = Decoder::new();
            let got: Vec<_> = bytes.chunks(chunk).flat_map(|c| d.feed(c)).collect();
            assert_eq!(got, sample(), "chunk size {chunk}");
            assert_eq!((d.damaged_bytes, d.damaged_frames, d.pending()), (0, 0, 0));
        }
    }

    #[test]
    fn survives_garbage_between_and_inside_frames() {
        let msgs = sample();
        let mut bytes = b"\r\nearly console noise\x7fK".to_vec();
        bytes.extend(encode(&msgs[0]));
        let mut corrupt = encode(&msgs[1]);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff; // bad checksum: dropped
        bytes.extend(corrupt);
        bytes.extend(b"\x7fKTS\xff\xff\xff\xff"); // absurd length: dropped
        bytes.extend(encode(&msgs[2]));
        let mut d = Decoder::new();
        assert_eq!(d.feed(&bytes), vec![msgs[0].clone(), msgs[2].clone()]);
        assert!(d.damaged_frames >= 2);
    }

    #[test]
    fn pseudo_random_garbage_never_panics() {
        // xorshift: deterministic noise, mixed with real frames and magics.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut d = Decoder::new();
        let frame = encode(&sample()[0]);
        let mut seen = 0;
        for round in 0..2000 {
            let mut chunk = Vec::new();
            for _ in 0..(x % 97) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.push(x as u8);
                if x.is_multiple_of(11) {
                    chunk.extend_from_slice(MAGIC);
                }
            }
            if round % 10 == 0 {
                chunk.extend(&frame);
            }
            seen += d.feed(&chunk).len();
        }
        seen += d.finish().len();
        // A garbage magic with a plausible length may swallow frames while
        // streaming, but finish() must recover every one behind it.
        assert_eq!(seen, 200, "every real frame embedded in noise decodes");
        assert_eq!(d.pending(), 0);
    }

    /// Found reviewing the channel_frame fuzz target (docs/fuzzing.md): a
    /// guest sending a magic every few bytes, each claiming a megabyte
    /// (checksum wrong) or more than follows, made `feed` hash the same
    /// bytes again for every magic and `finish` move the whole buffer once
    /// per byte it dropped: hours of host CPU for a few MiB. Now linear:
    /// the bytes hashed in vain stay within a fixed multiple of the stream.
    #[test]
    fn magic_storms_cost_linear_time() {
        let unit = [0x7f, b'K', b'T', b'S', 0x00, 0x00, 0x10, 0x00]; // len 1 MiB
        let stream: Vec<u8> = unit.iter().copied().cycle().take(2 << 20).collect();
        let mut d = Decoder::new();
        for chunk in stream.chunks(64 << 10) {
            assert!(d.feed(chunk).is_empty());
        }
        assert!(d.finish().is_empty());
        assert_eq!((d.damaged_bytes, d.pending()), (stream.len(), 0));
        assert!(d.hashed_in_vain <= HASH_BUDGET * stream.len() as u64);
        // A real frame after the storm still decodes.
        let mut d = Decoder::new();
        let frame = encode(&sample()[2]);
        d.feed(&stream);
        assert_eq!(d.feed(&frame), Vec::<GuestMessage>::new(), "inside the storm's claimed lengths");
        assert_eq!(d.finish(), vec![sample()[2].clone()]);
    }

    /// Mutation fuzzing: damage some frames of a real stream (flip,
    /// truncate, splice garbage), feed it in random chunks, and require
    /// every undamaged frame back, in order, with no panic.
    #[test]
    fn damaged_frames_never_cost_their_neighbours() {
        let mut x: u64 = 0x2545f4914f6cdd1d;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        for _ in 0..300 {
            let mut stream = Vec::new();
            let mut intact = Vec::new();
            for i in 0..(1 + rnd(12)) {
                let msg = GuestMessage::SchedulerOutput {
                    stream: LogStream::Stdout,
                    line: format!("line {i} {}", "x".repeat(rnd(300) as usize)),
                };
                let mut f = encode(&msg);
                match rnd(4) {
                    0 => {
                        let at = rnd(f.len() as u64) as usize;
                        f[at] ^= 1 << rnd(8);
                    }
                    1 => f.truncate(rnd(f.len() as u64) as usize),
                    2 => {
                        let at = rnd(f.len() as u64) as usize;
                        let junk: Vec<u8> = (0..rnd(40)).map(|_| rnd(256) as u8).collect();
                        f.splice(at..at, junk);
                    }
                    _ => intact.push(msg),
                }
                stream.extend(f);
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut rest = stream.as_slice();
            while !rest.is_empty() {
                let n = (1 + rnd(64) as usize).min(rest.len());
                got.extend(d.feed(&rest[..n]));
                rest = &rest[n..];
            }
            got.extend(d.finish());
            let mut it = got.iter();
            for want in &intact {
                assert!(it.any(|g| g == want), "lost intact frame {want:?}");
            }
        }
    }
}
