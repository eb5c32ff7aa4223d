//! A guest's stdout and stderr: every complete line goes to the host log
//! (target `cairn::guest`, with the instance id), except while an
//! orchestrator is replaying; the last [`MAX_TAIL`] bytes are kept for
//! failure messages (a Rust panic message, a Python traceback). A write
//! never fails, however much a guest prints.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of output kept for failure messages.
pub(super) const MAX_TAIL: usize = 16 * 1024;
/// Longest line logged as one record; longer lines are split.
const MAX_LINE: usize = 8 * 1024;

/// One output stream of one guest store. Clones share the state.
#[derive(Clone)]
pub(super) struct GuestOutput {
    inner: Arc<Mutex<Inner>>,
    /// Set while the orchestrator replays history (nothing is logged).
    quiet: Arc<AtomicBool>,
}

struct Inner {
    stream: &'static str,
    instance: String,
    tail: Vec<u8>,
    line: Vec<u8>,
    /// Lines go here instead of the host log (a probed side run).
    probe: Option<Arc<super::probe::Probe>>,
}

impl GuestOutput {
    pub(super) fn new(stream: &'static str, instance: &str, quiet: Arc<AtomicBool>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                stream,
                instance: instance.to_owned(),
                tail: Vec::new(),
                line: Vec::new(),
                probe: None,
            })),
            quiet,
        }
    }

    /// Starts over for a new call by `instance`: the tail and any partial
    /// line are dropped.
    pub(super) fn reset(&self, instance: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.tail.clear();
            inner.line.clear();
            instance.clone_into(&mut inner.instance);
        }
    }

    /// Sends every line to `probe` instead of the host log.
    pub(super) fn set_probe(&self, probe: Arc<super::probe::Probe>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.probe = Some(probe);
        }
    }

    /// The last bytes written (at most [`MAX_TAIL`]).
    pub(super) fn tail(&self) -> Vec<u8> {
        self.inner.lock().map(|i| i.tail.clone()).unwrap_or_default()
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tail.extend_from_slice(bytes);
        if inner.tail.len() > 2 * MAX_TAIL {
            let cut = inner.tail.len() - MAX_TAIL;
            inner.tail.drain(..cut);
        }
        let quiet = self.quiet.load(Ordering::Relaxed);
        for &b in bytes {
            if b == b'\n' || inner.line.len() >= MAX_LINE {
                if let Some(p) = &inner.probe {
                    let text = String::from_utf8_lossy(&inner.line);
                    p.line(inner.stream, text.trim_end_matches('\r'));
                } else if !quiet {
                    inner.emit();
                }
                inner.line.clear();
                if b == b'\n' {
                    continue;
                }
            }
            inner.line.push(b);
        }
    }
}

impl Inner {
    fn emit(&self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        tracing::info!(target: "cairn::guest", instance = %self.instance, stream = self.stream, "{text}");
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_tail_and_never_fails() {
        let out = GuestOutput::new("stdout", "i", Arc::new(AtomicBool::new(true)));
        let mut stream = out.p2_stream();
        for i in 0..10_000 {
            stream.write(Bytes::from(format!("line {i}\n"))).unwrap();
        }
        let tail = out.tail();
        assert!(tail.len() <= 2 * MAX_TAIL);
        assert!(String::from_utf8(tail).unwrap().ends_with("line 9999\n"));
    }
}
