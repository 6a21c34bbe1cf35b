//! `cargo ktstr kernel fetch` killed (SIGKILL) mid-download, then run
//! again: the second run removes what the first left, says so, and
//! installs the kernel. Real apt, real Debian mirror, a fresh temporary
//! cache. The first run's download goes through a slow local relay (apt
//! honours `http_proxy`), so the kill lands mid-download whatever the
//! link's speed. Needs the network and fails saying so without it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: the shared machine is slow at times; nothing is timed.
const PATIENCE: Duration = Duration::from_secs(600);

/// An HTTP proxy on localhost that relays to the real host, sending the
/// responses back at about 300 KB/s. Returns its URL.
fn slow_relay() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the relay");
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || relay(client));
        }
    });
    url
}

fn relay(mut client: TcpStream) -> Option<()> {
    // The request head names the host: `GET http://host/path HTTP/1.1`
    // (the origin accepts the absolute form) or `CONNECT host:443`.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head).lines().next()?.to_string();
    let mut words = line.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    let mut upstream = if method == "CONNECT" {
        let up = TcpStream::connect(target).ok()?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").ok()?;
        up
    } else {
        let host = target.strip_prefix("http://")?.split('/').next()?;
        let addr = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
        let mut up = TcpStream::connect(addr).ok()?;
        up.write_all(&head).ok()?;
        up
    };
    let (mut to_up, mut from_up) = (client.try_clone().ok()?, upstream.try_clone().ok()?);
    std::thread::spawn(move || std::io::copy(&mut to_up, &mut upstream));
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from_up.read(&mut buf).ok().filter(|&n| n > 0)?;
        client.write_all(&buf[..n]).ok()?;
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fetch(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-ktstr"));
    cmd.args(["ktstr", "kernel", "fetch"])
        .env("KTSTR_CACHE_DIR", cache)
        .env_remove("KTSTR_KERNEL")
        .env_remove("http_proxy")
        .env_remove("https_proxy");
    cmd
}

/// The fetch's staging directories (`<cache>/kernels/.staging-*`).
fn staging_dirs(kernels: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(kernels)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".staging-")))
        .collect()
}

/// Bytes of .deb received so far in a staging directory.
fn downloaded(staging: &Path) -> u64 {
    std::fs::read_dir(staging.join("debs"))
        .map(|rd| rd.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Collects a child's stderr lines as they come.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let (sink, stderr) = (text.clone(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    text
}

/// Processes whose working directory is inside `dir` (an apt-get still
/// downloading into it, perhaps after `dir` was removed).
fn working_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_fetch_killed_mid_download_is_cleaned_up_and_redone() {
    let cache = TempCache(std::env::temp_dir().join(format!("ktstr-interrupted-fetch-{}", std::process::id())));
    let (cache, kernels) = (&cache.0, cache.0.join("kernels"));

    // First run: killed once its download has really started.
    let proxy = slow_relay();
    let mut first = fetch(cache)
        .env("http_proxy", &proxy)
        .env("https_proxy", &proxy)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running cargo-ktstr");
    let stderr = collect_stderr(&mut first);
    let started = Instant::now();
    let staging = loop {
        if let Some(s) = staging_dirs(&kernels).into_iter().find(|s| downloaded(s) > 0) {
            break s;
        }
        if let Some(status) = first.try_wait().unwrap() {
            panic!(
                "the first fetch ended ({status}) before its download started; this test needs the \
                 network (Debian's mirror). Its stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
        assert!(started.elapsed() < PATIENCE, "no download after {PATIENCE:?}:\n{}", stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    };
    first.kill().expect("SIGKILL to the fetch");
    first.wait().unwrap();
    assert!(stderr.lock().unwrap().contains("ktstr: downloading "), "{}", stderr.lock().unwrap());
    assert!(staging.is_dir(), "the killed fetch left no staging directory to clean up");
    assert!(ktstr::kernel::KernelStore::new(&kernels).list().is_empty(), "a kernel was installed before the kill");
    // Second run, at full speed: cleans up, then fetches whole.
    let second = fetch(cache).output().expect("running cargo-ktstr");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "the second fetch failed (does this host reach Debian's mirror?):\n{err}");
    let removed = format!("ktstr: removed what a killed run left: {}\n", staging.display());
    assert!(err.contains(&removed), "no {removed:?} in:\n{err}");
    let cached = ktstr::kernel::KernelStore::new(&kernels).list();
    assert_eq!(cached.len(), 1, "{err}");
    assert!(cached[0].vmlinuz.is_file() && cached[0].config.is_some());
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), cached[0].vmlinuz.display().to_string());
    assert!(staging_dirs(&kernels).is_empty(), "staging left: {:?}", staging_dirs(&kernels));
    // The killed run's apt-get (which outlives it: apt clears
    // PR_SET_PDEATHSIG) was stopped, not left downloading at the relay's
    // pace into the removed directory.
    let left = working_in(&staging);
    assert!(left.is_empty(), "apt processes {left:?} still work in {}", staging.display());
}

/// A fresh cache directory, removed when the test ends (pass or fail).
struct TempCache(PathBuf);
impl Drop for TempCache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
