//! The machine a run was measured on, read from the operating system.

use serde::{Deserialize, Serialize};

/// Hardware and OS facts recorded with every run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name, or `unknown`.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Total memory in bytes, 0 when unknown.
    pub memory_bytes: u64,
    /// Operating system name and version.
    pub os: String,
    /// Kernel release, where the OS has one.
    pub kernel: Option<String>,
    /// CPU architecture.
    pub arch: String,
    /// Host name.
    pub hostname: Option<String>,
}

impl Machine {
    /// Describes the machine this process runs on.
    pub fn current() -> Machine {
        Machine {
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_bytes().unwrap_or(0),
            os: os_name(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            arch: std::env::consts::ARCH.into(),
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|line| line.starts_with("model name") || line.starts_with("Model") || line.starts_with("Hardware"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_owned())
}

fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("PRETTY_NAME="))
                .map(|value| value.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_something_about_this_machine() {
        let machine = Machine::current();
        assert!(machine.cores >= 1);
        assert!(!machine.os.is_empty());
        assert!(!machine.arch.is_empty());
    }
}
