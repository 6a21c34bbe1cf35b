//! Helpers shared by this crate's integration tests.
#![allow(dead_code)] // each test file uses some of them

/// The QEMU processes whose parent is `parent`, read from /proc
/// (`pid (comm) state ppid ...`).
pub fn qemu_children_of(parent: u32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1)?.parse::<u32>().ok());
            stat.contains("(qemu-system-x86") && ppid == Some(parent)
        })
        .collect()
}
