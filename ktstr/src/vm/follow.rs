//! A VM's kernel console, forwarded live while it runs (the auto-repro
//! VM's to stderr under `RUST_BACKTRACE=1`; the shell's to its terminal
//! under `--dmesg`): the console file is read as it grows, whole lines at
//! a time, each with a prefix.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Forwards until dropped; what the console holds by then is flushed.
pub struct ConsoleFollower {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Follows `<run_dir>/console.log`, printing each line to stderr as
/// `<prefix><line>`.
pub fn follow_console(run_dir: &Path, prefix: &str) -> ConsoleFollower {
    follow_console_into(run_dir, prefix, Box::new(std::io::stderr()))
}

/// [`follow_console`], writing to `out`.
pub fn follow_console_into(run_dir: &Path, prefix: &str, out: Box<dyn Write + Send>) -> ConsoleFollower {
    follow_into(run_dir.join(super::qemu::CONSOLE_LOG), prefix, out)
}

fn follow_into(path: PathBuf, prefix: &str, out: Box<dyn Write + Send>) -> ConsoleFollower {
    let prefix = prefix.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || follow(&path, &prefix, &flag, out));
    ConsoleFollower { stop, thread: Some(thread) }
}

impl Drop for ConsoleFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn follow(path: &Path, prefix: &str, stop: &AtomicBool, mut out: Box<dyn Write + Send>) {
    let (mut offset, mut partial) = (0u64, Vec::new());
    loop {
        // Read the flag before the file: the last pass sees everything.
        let last = stop.load(Ordering::Relaxed);
        if let Ok(mut f) = std::fs::File::open(path) {
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                offset += buf.len() as u64;
                partial.extend_from_slice(&buf);
            }
        }
        while let Some(nl) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line);
            let _ = writeln!(out, "{prefix}{}", text.trim_end_matches(['\n', '\r']));
        }
        if last {
            if !partial.is_empty() {
                let _ = writeln!(out, "{prefix}{}", String::from_utf8_lossy(&partial).trim_end());
            }
            let _ = out.flush();
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_forwarded_as_the_file_grows_and_the_rest_on_drop() {
        let dir = std::env::temp_dir().join(format!("ktstr-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console.log");
        let sink = Sink::default();
        // Started before the file exists, as with a VM still starting.
        let f = follow_into(path.clone(), "repro | ", Box::new(sink.clone()));
        std::fs::write(&path, "[    0.000000] Linux version 7.3.4\r\n[    0.1] half").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(String::from_utf8_lossy(&sink.0.lock().unwrap()), "repro | [    0.000000] Linux version 7.3.4\n");
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b" a line").unwrap();
        drop(f);
        assert_eq!(
            String::from_utf8_lossy(&sink.0.lock().unwrap()),
            "repro | [    0.000000] Linux version 7.3.4\nrepro | [    0.1] half a line\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
