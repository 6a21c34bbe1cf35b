//! A kernel `.config` file: `CONFIG_X=value` lines and `# CONFIG_X is not set`.

use std::collections::HashMap;
use std::path::Path;

/// The option that makes a kernel able to run sched_ext schedulers.
pub(crate) const SCHED_EXT_OPTION: &str = "CONFIG_SCHED_CLASS_EXT";

/// Whether a kernel can run sched_ext schedulers, judged from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedExtSupport {
    /// `CONFIG_SCHED_CLASS_EXT=y`.
    Yes,
    /// The config says it is off (or does not mention it).
    No,
    /// There is no readable config to tell.
    Unknown,
}

impl std::fmt::Display for SchedExtSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SchedExtSupport::Yes => "yes",
            SchedExtSupport::No => "no",
            SchedExtSupport::Unknown => "unknown",
        })
    }
}

/// Parsed kernel config. Options are keyed with their `CONFIG_` prefix;
/// `# CONFIG_X is not set` is stored as `n`.
#[derive(Debug, Clone, Default)]
pub struct KernelConfig {
    values: HashMap<String, String>,
}

impl KernelConfig {
    pub fn parse(text: &str) -> Self {
        let mut values = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
                if name.starts_with("CONFIG_") {
                    values.insert(name.to_string(), "n".to_string());
                }
            } else if let Some((name, value)) = line.split_once('=') {
                if name.starts_with("CONFIG_") && !line.starts_with('#') {
                    values.insert(name.to_string(), value.to_string());
                }
            }
        }
        KernelConfig { values }
    }

    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    fn full_name(name: &str) -> std::borrow::Cow<'_, str> {
        if name.starts_with("CONFIG_") {
            name.into()
        } else {
            format!("CONFIG_{name}").into()
        }
    }

    /// The raw value (`y`, `m`, `n`, `"text"`, `42`) of an option, with or
    /// without its `CONFIG_` prefix.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(Self::full_name(name).as_ref()).map(String::as_str)
    }

    /// Built in (`=y`).
    pub(crate) fn is_builtin(&self, name: &str) -> bool {
        self.get(name) == Some("y")
    }

    /// Built in or a module.
    #[cfg(test)]
    pub(crate) fn is_enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Some("y" | "m"))
    }

    pub fn sched_ext(&self) -> SchedExtSupport {
        if self.is_builtin(SCHED_EXT_OPTION) {
            SchedExtSupport::Yes
        } else {
            SchedExtSupport::No
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// sched_ext support according to the config file at `path`, if any.
/// Scans for the one option rather than parsing the whole file: this runs
/// on every `resolve()`.
pub(crate) fn sched_ext_support(path: Option<&Path>) -> SchedExtSupport {
    let Some(Ok(text)) = path.map(std::fs::read_to_string) else {
        return SchedExtSupport::Unknown;
    };
    if !text.lines().any(|l| l.starts_with("CONFIG_") || l.starts_with("# CONFIG_")) {
        return SchedExtSupport::Unknown;
    }
    let on = format!("{SCHED_EXT_OPTION}=y");
    if text.lines().any(|l| l.trim_end() == on) {
        SchedExtSupport::Yes
    } else {
        SchedExtSupport::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_CC_VERSION_TEXT=\"gcc (Debian 14.2.0-19) 14.2.0\"
CONFIG_SCHED_CLASS_EXT=y
CONFIG_DEBUG_INFO_BTF=y
CONFIG_KVM=m
# CONFIG_IKCONFIG is not set
CONFIG_NR_CPUS=8192
";

    #[test]
    fn parses_values() {
        let c = KernelConfig::parse(SAMPLE);
        assert_eq!(c.get("CONFIG_NR_CPUS"), Some("8192"));
        assert_eq!(c.get("NR_CPUS"), Some("8192"));
        assert_eq!(c.get("CC_VERSION_TEXT"), Some("\"gcc (Debian 14.2.0-19) 14.2.0\""));
        assert_eq!(c.get("IKCONFIG"), Some("n"));
        assert_eq!(c.get("MISSING"), None);
        assert!(c.is_builtin("DEBUG_INFO_BTF"));
        assert!(c.is_enabled("KVM") && !c.is_builtin("KVM"));
        assert!(!c.is_enabled("IKCONFIG"));
        assert_eq!(c.sched_ext(), SchedExtSupport::Yes);
    }

    #[test]
    fn sched_ext_off_or_missing() {
        assert_eq!(KernelConfig::parse("# CONFIG_SCHED_CLASS_EXT is not set\n").sched_ext(), SchedExtSupport::No);
        assert_eq!(KernelConfig::parse("CONFIG_BPF=y\n").sched_ext(), SchedExtSupport::No);
        assert_eq!(KernelConfig::parse("CONFIG_SCHED_CLASS_EXT=m\n").sched_ext(), SchedExtSupport::No);
        assert_eq!(sched_ext_support(None), SchedExtSupport::Unknown);
        assert_eq!(sched_ext_support(Some(Path::new("/nonexistent/config"))), SchedExtSupport::Unknown);
    }
}
