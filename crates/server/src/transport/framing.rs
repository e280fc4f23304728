//! Reading and writing single frames on a stream: what both ends of a handshake use.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{check_len, decode_body, encode_frame, CodecError, Frame, LEN_BYTES};

/// The longest frame read before the handshake is done: a `Hello` is a header, two
/// varints, an optional 16-byte cluster ID and an 8-byte fingerprint (at most 47 bytes).
pub const HELLO_MAX_FRAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("bad frame: {0}")]
    Codec(#[from] CodecError),
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame: usize,
) -> Result<Option<Frame>, ReadError> {
    let mut len = [0u8; LEN_BYTES];
    let mut got = 0;
    while got < LEN_BYTES {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(CodecError::Truncated("length prefix").into());
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    // Checked before allocating: a forged length cannot make us reserve memory.
    check_len(len, max_frame)?;
    let mut body = BytesMut::zeroed(len);
    match r.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(CodecError::Truncated("frame").into())
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Some(decode_body(body.freeze())?))
}

/// Encodes `frame` (a small one: a `Hello`), writes and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(HELLO_MAX_FRAME);
    encode_frame(frame, HELLO_MAX_FRAME, &mut buf).map_err(|e| e.to_string())?;
    w.write_all(&buf).await.map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())
}
