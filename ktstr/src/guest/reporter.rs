//! The guest end of the channel: frames written to the second serial port.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use nix::sys::termios::{self, SetArg};

use crate::channel::{encode, GuestMessage, GuestStep};

/// The channel's device: COM2 (COM1 is the kernel console).
const CHANNEL_TTY: &str = "/dev/ttyS1";

static PORT: OnceLock<Mutex<File>> = OnceLock::new();

/// Cheap handle to the process-wide channel; safe to use from any thread.
#[derive(Clone, Copy)]
pub(crate) struct Reporter(());

impl Reporter {
    pub fn open() -> anyhow::Result<Reporter> {
        if PORT.get().is_none() {
            let port = OpenOptions::new().write(true).read(true).open(CHANNEL_TTY)?;
            // Raw mode: the tty must not turn \n into \r\n inside frames.
            let mut t = termios::tcgetattr(&port)?;
            termios::cfmakeraw(&mut t);
            termios::tcsetattr(&port, SetArg::TCSANOW, &t)?;
            let _ = PORT.set(Mutex::new(port));
        }
        Ok(Reporter(()))
    }

    pub fn send(&self, msg: &GuestMessage) {
        send(msg)
    }

    pub fn error(&self, stage: GuestStep, message: impl Into<String>) {
        self.send(&GuestMessage::Error { stage, message: message.into() });
    }

    /// Reports a fatal problem and returns the exit code to power off with.
    pub fn fail(&self, stage: GuestStep, message: impl Into<String>) -> i32 {
        self.error(stage, message);
        1
    }
}

fn send(msg: &GuestMessage) {
    if let Some(port) = PORT.get() {
        let mut port = port.lock().unwrap_or_else(|e| e.into_inner());
        // A failed write cannot be reported anywhere better; the host
        // notices the missing messages.
        let _ = port.write_all(&encode(msg));
        let _ = port.flush();
    }
}

/// Last message before power-off; waits until the UART has sent it all.
pub(crate) fn send_exit(code: i32) {
    send(&GuestMessage::Exit { code });
    if let Some(port) = PORT.get() {
        let port = port.lock().unwrap_or_else(|e| e.into_inner());
        let _ = termios::tcdrain(&*port);
    }
}
