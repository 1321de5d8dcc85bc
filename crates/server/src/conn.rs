//! Connections: hyper's own refusals of a request head, answered in the envelope.
//!
//! hyper refuses some requests before axum ever sees them: a request target longer than
//! 65,534 bytes (414), a head larger than its read buffer (~400 KiB) or with more than
//! 100 headers (431), a request line that does not parse (400). It writes those answers
//! itself, with an empty body, and closes the connection. The URI bound is a constant in
//! hyper, so it cannot be raised and re-enforced in a middleware; and axum's `serve`
//! does not expose hyper's builder anyway.
//!
//! So the one place that sees those answers is the connection: [`Listener`] hands hyper
//! each accepted stream wrapped in [`Enveloped`], which recognises hyper's automatic
//! answer (a bare head, no body, no `x-request-id`: every answer of the router carries
//! one) and writes the JSON error envelope in its place, with a code matching the
//! status (`uri_too_long`, `headers_too_large`, `bad_request`). Everything else passes
//! through untouched. The limits stay hyper's defaults.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ApiError;

/// A TCP listener whose connections answer hyper's refusals in the envelope.
pub struct Listener(pub TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Enveloped<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (Enveloped::new(stream), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection's stream; see the module docs.
pub struct Enveloped<T> {
    inner: T,
    /// The envelope being written in place of hyper's answer: bytes, how many are
    /// written, and how many bytes of hyper's answer to report written once done.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> Enveloped<T> {
    pub fn new(inner: T) -> Self {
        Enveloped {
            inner,
            replacing: None,
        }
    }
}

/// The status of `buf` if it is exactly hyper's automatic answer to a bad request head:
/// one complete head, status 400, 414 or 431, `content-length: 0`, no `x-request-id`.
fn hyper_refusal(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(rest.get(..3)?).ok()?;
    if !matches!(status.as_u16(), 400 | 414 | 431) {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?.to_ascii_lowercase();
    let end = head.find("\r\n\r\n")?;
    let bare = end + 4 == head.len()
        && head.contains("\r\ncontent-length: 0\r\n")
        && !head.contains("\r\nx-request-id:");
    bare.then_some(status)
}

/// The whole HTTP answer written instead of hyper's: the error envelope, closing.
fn envelope_answer(status: StatusCode) -> Vec<u8> {
    let request_id = crate::envelope::new_request_id();
    let error = ApiError::for_status(status);
    let body = crate::error::error_body(&error, &request_id).to_string();
    let reason = status.canonical_reason().unwrap_or("");
    format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-request-id: {request_id}\r\nx-content-type-options: nosniff\r\n\
         cache-control: no-store\r\n\r\n{body}",
        status.as_u16(),
        body.len(),
    )
    .into_bytes()
}

impl<T: AsyncWrite + Unpin> Enveloped<T> {
    /// Writes the pending envelope; ready with the length of hyper's answer once done.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<usize>>> {
        while let Some((bytes, written, _)) = &mut self.replacing {
            if *written == bytes.len() {
                let claimed = self.replacing.take().map(|(_, _, c)| c);
                return Poll::Ready(Ok(claimed));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(None))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Enveloped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Enveloped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none()
            && let Some(status) = hyper_refusal(buf)
        {
            self.replacing = Some((envelope_answer(status), 0, buf.len()));
        }
        match ready!(self.drive(cx))? {
            Some(claimed) => Poll::Ready(Ok(claimed)),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's answer is a head alone: one non-empty buffer.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            return self.poll_write(cx, only);
        }
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_hyper_s_bare_refusals() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_refusal(bare), Some(StatusCode::URI_TOO_LONG));
        let ours = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\nx-request-id: a\r\n\r\n";
        assert_eq!(
            hyper_refusal(ours),
            None,
            "the router's answers carry a request id"
        );
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        assert_eq!(hyper_refusal(with_body), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_refusal(ok), None);
    }
}
