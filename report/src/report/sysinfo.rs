//! What machine the report ran on.

/// The CPU model: the first `model name` of `/proc/cpuinfo`, or `"unknown"`.
///
/// Under qemu-user, `/proc/cpuinfo` is the host's, so this names the host CPU; see
/// [`emulated`].
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| field(&text, "model name"))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whether this process looks emulated (qemu-user): `/proc/cpuinfo` describes an x86 CPU
/// (it has `vendor_id` lines) while we were compiled for another architecture. Timings are
/// then meaningless as absolute numbers.
pub fn emulated() -> bool {
    let x86 = matches!(std::env::consts::ARCH, "x86" | "x86_64");
    !x86 && std::fs::read_to_string("/proc/cpuinfo")
        .map(|text| field(&text, "vendor_id").is_some())
        .unwrap_or(false)
}

/// The value of the first `name : value` line of a `/proc/cpuinfo` text.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == name)
            .then(|| v.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\
                    processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(field(text, "model name").as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(field(text, "vendor_id").as_deref(), Some("AuthenticAMD"));
        assert_eq!(field(text, "Hardware"), None);
        assert_eq!(field("model name\t:\n", "model name"), None);
    }
}
