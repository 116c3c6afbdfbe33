//! The processors and memory: `/proc/cpuinfo` (read once, flags included)
//! and `/proc/meminfo`, parsed the way Salt's `_linux_cpudata` and
//! `_linux_memdata` do.

use super::root::Root;

/// What `/proc/cpuinfo` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    /// `processor` lines (or the s390 `# processors` count).
    pub count: Option<usize>,
    /// The last of `vendor_id`, `model name`, `cpu` (POWER), `Processor`
    /// (old ARM) seen, as Salt keeps it.
    pub model: Option<String>,
    /// `flags` (x86) or `Features` (ARM), in the kernel's order.
    pub flags: Option<Vec<String>>,
    /// `vendor_id` (`GenuineIntel`, `User Mode Linux`).
    pub vendor_id: Option<String>,
    /// Whether the text names a `QEMU Virtual CPU` (Salt's KVM hint).
    pub qemu_virtual_cpu: bool,
    /// Distinct `physical id`s: sockets; `None` where cpuinfo has none.
    pub physical_count: Option<usize>,
    /// Each processor's `model name`, in order (Facter's `models`).
    pub models: Vec<String>,
    /// The first processor's `cpu cores` (x86): cores per socket, what
    /// `lscpu` gives Facter's `processors.cores`.
    pub cores_per_socket: Option<usize>,
    /// Its `siblings` over `cpu cores`: threads per core (`processors.threads`).
    pub threads_per_core: Option<usize>,
}

impl Cpu {
    /// The `hypervisor` flag: the CPU says it runs under one.
    pub fn hypervisor(&self) -> bool {
        self.flags
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "hypervisor"))
    }
}

/// Memory totals from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub total_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
}

pub fn collect_cpu(root: &Root) -> Cpu {
    root.read("/proc/cpuinfo")
        .map(|t| parse_cpuinfo(&t))
        .unwrap_or_default()
}

pub fn collect_memory(root: &Root) -> Memory {
    root.read("/proc/meminfo")
        .map(|t| parse_meminfo(&t))
        .unwrap_or_default()
}

pub fn parse_cpuinfo(text: &str) -> Cpu {
    let mut cpu = Cpu {
        qemu_virtual_cpu: text.contains("QEMU Virtual CPU"),
        ..Cpu::default()
    };
    let mut processors = 0usize;
    let mut declared = None;
    let mut sockets: Vec<&str> = Vec::new();
    let mut siblings: Option<usize> = None;
    for line in text.lines() {
        let Some((key, val)) = line.split_once(':') else {
            continue;
        };
        let (key, val) = (key.trim(), val.trim());
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        match key {
            "processor" => processors += 1,
            "# processors" => declared = val.parse().ok(),
            "vendor_id" => {
                cpu.vendor_id = some(val);
                cpu.model = some(val).or(cpu.model.take());
            }
            "model name" | "cpu" => {
                if key == "model name" && !val.is_empty() {
                    cpu.models.push(val.to_owned());
                }
                cpu.model = some(val).or(cpu.model.take());
            }
            "physical id" if !sockets.contains(&val) => sockets.push(val),
            // Every processor repeats these too: the first is enough.
            "cpu cores" if cpu.cores_per_socket.is_none() => {
                cpu.cores_per_socket = val.parse().ok().filter(|n| *n > 0);
            }
            "siblings" if siblings.is_none() => siblings = val.parse().ok(),
            "Processor" => {
                let model = val.split('-').next().unwrap_or_default().trim();
                cpu.model = some(model).or(cpu.model.take());
            }
            // Every processor repeats its flags: the first list is enough.
            "flags" | "Features" if cpu.flags.is_none() => {
                cpu.flags = Some(val.split_whitespace().map(str::to_owned).collect());
            }
            _ => {}
        }
    }
    cpu.count = declared.or((processors > 0).then_some(processors));
    cpu.physical_count = (!sockets.is_empty()).then_some(sockets.len());
    cpu.threads_per_core = cpu
        .cores_per_socket
        .zip(siblings)
        .map(|(cores, siblings)| siblings / cores)
        .filter(|t| *t > 0);
    cpu
}

pub fn parse_meminfo(text: &str) -> Memory {
    let kib = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name)
                .then(|| v.split_whitespace().next()?.parse::<u64>().ok())
                .flatten()
        })
    };
    Memory {
        total_bytes: kib("MemTotal").map(|k| k * 1024),
        swap_bytes: kib("SwapTotal").map(|k| k * 1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
        model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\ncpu MHz\t\t: 2900.000\n\
        flags\t\t: fpu vme de pse hypervisor lahf_lm\n\n\
        processor\t: 1\nvendor_id\t: GenuineIntel\n\
        model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n\
        flags\t\t: fpu vme de pse hypervisor lahf_lm\n";

    #[test]
    fn cpuinfo_in_salts_shapes() {
        struct Case {
            text: &'static str,
            count: Option<usize>,
            model: Option<&'static str>,
            flags: Option<&'static [&'static str]>,
            hypervisor: bool,
        }
        let cases = [
            Case {
                text: X86,
                count: Some(2),
                model: Some("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"),
                flags: Some(&["fpu", "vme", "de", "pse", "hypervisor", "lahf_lm"]),
                hypervisor: true,
            },
            // Bare metal: no hypervisor flag.
            Case {
                text: "processor : 0\nvendor_id : AuthenticAMD\nmodel name : AMD EPYC 7763 64-Core Processor\nflags : fpu sse2 svm\n",
                count: Some(1),
                model: Some("AMD EPYC 7763 64-Core Processor"),
                flags: Some(&["fpu", "sse2", "svm"]),
                hypervisor: false,
            },
            // arm64 names no model: absent, where Salt says "Unknown".
            Case {
                text: "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm\nCPU implementer\t: 0x41\n\nprocessor\t: 1\nFeatures\t: fp asimd evtstrm\n",
                count: Some(2),
                model: None,
                flags: Some(&["fp", "asimd", "evtstrm"]),
                hypervisor: false,
            },
            // Old ARM: `Processor` names the model up to its first dash.
            Case {
                text: "Processor\t: ARMv6-compatible processor rev 7 (v6l)\nprocessor\t: 0\nFeatures\t: swp half thumb\n",
                count: Some(1),
                model: Some("ARMv6"),
                flags: Some(&["swp", "half", "thumb"]),
                hypervisor: false,
            },
            // POWER: `cpu` is the model.
            Case {
                text: "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\nclock\t\t: 2750.000000MHz\n",
                count: Some(1),
                model: Some("POWER9 (architected), altivec supported"),
                flags: None,
                hypervisor: false,
            },
            // s390 declares its count.
            Case {
                text: "vendor_id       : IBM/S390\n# processors    : 4\nprocessor 0: version = FF\n",
                count: Some(4),
                model: Some("IBM/S390"),
                flags: None,
                hypervisor: false,
            },
            Case {
                text: "",
                count: None,
                model: None,
                flags: None,
                hypervisor: false,
            },
        ];
        for c in cases {
            let cpu = parse_cpuinfo(c.text);
            assert_eq!(cpu.count, c.count, "{}", c.text);
            assert_eq!(cpu.model.as_deref(), c.model, "{}", c.text);
            let flags: Option<Vec<&str>> = cpu
                .flags
                .as_ref()
                .map(|f| f.iter().map(String::as_str).collect());
            assert_eq!(flags.as_deref(), c.flags, "{}", c.text);
            assert_eq!(cpu.hypervisor(), c.hypervisor, "{}", c.text);
        }
    }

    #[test]
    fn cores_and_threads_as_lscpu_counts_them() {
        let cases: &[(&str, Option<usize>, Option<usize>)] = &[
            (
                "processor : 0\nsiblings : 2\ncpu cores : 2\n",
                Some(2),
                Some(1),
            ),
            (
                "processor : 0\nsiblings : 16\ncpu cores : 8\n",
                Some(8),
                Some(2),
            ),
            // arm64 says neither.
            ("processor : 0\nFeatures : fp asimd\n", None, None),
            ("processor : 0\ncpu cores : 4\n", Some(4), None),
            ("processor : 0\nsiblings : 4\ncpu cores : 0\n", None, None),
        ];
        for (text, cores, threads) in cases {
            let cpu = parse_cpuinfo(text);
            assert_eq!(cpu.cores_per_socket, *cores, "{text}");
            assert_eq!(cpu.threads_per_core, *threads, "{text}");
        }
    }

    #[test]
    fn a_qemu_virtual_cpu_is_noticed() {
        let cpu = parse_cpuinfo("processor : 0\nmodel name : QEMU Virtual CPU version 2.5+\n");
        assert!(cpu.qemu_virtual_cpu);
        assert!(!parse_cpuinfo(X86).qemu_virtual_cpu);
    }

    #[test]
    fn meminfo_totals_in_bytes() {
        let m = parse_meminfo(
            "MemTotal:        2097152 kB\nMemFree:          100000 kB\nSwapTotal:       1048576 kB\n",
        );
        assert_eq!(m.total_bytes, Some(2048 * 1024 * 1024));
        assert_eq!(m.swap_bytes, Some(1024 * 1024 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), Memory::default());
    }
}
