//! Graphics controllers: `/sys/bus/pci/devices/*/{class,vendor,device}`,
//! named from the `pci.ids` database when it is installed — Salt's `gpus`
//! (a list of `{vendor, model}`) and `num_gpus`, which Salt reads from
//! `lspci -vmm`.
//!
//! Salt's classes: VGA compatible (0x0300), 3D (0x0302) and display
//! (0x0380) controllers. Salt's vendor is the first of its known names
//! (`nvidia`, `amd`, `ati`, `intel`, `cirrus logic`, `vmware`, `matrox`,
//! `aspeed`) among the words of the vendor's `pci.ids` name, else
//! `unknown`; without `pci.ids` the PCI vendor id decides.

use super::root::Root;

/// A display controller on the PCI bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// `0000:01:00.0`.
    pub slot: String,
    pub vendor_id: u16,
    pub device_id: u16,
    /// From `pci.ids`, when installed and listing them.
    pub vendor_name: Option<String>,
    pub device_name: Option<String>,
}

const PCI_IDS: &[&str] = &[
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
];

pub fn collect(root: &Root) -> Option<Vec<Gpu>> {
    let slots = root.list("/sys/bus/pci/devices").ok()?;
    let mut gpus = Vec::new();
    for slot in slots {
        let hex = |f: &str| {
            let v = root.read_value(&format!("/sys/bus/pci/devices/{slot}/{f}"))?;
            u32::from_str_radix(v.trim_start_matches("0x"), 16).ok()
        };
        let Some(class) = hex("class") else { continue };
        if !is_display(class) {
            continue;
        }
        let (Some(vendor), Some(device)) = (hex("vendor"), hex("device")) else {
            continue;
        };
        gpus.push(Gpu {
            slot,
            vendor_id: vendor as u16,
            device_id: device as u16,
            vendor_name: None,
            device_name: None,
        });
    }
    // The database is large: read only when there is something to name.
    if !gpus.is_empty()
        && let Some(ids) = PCI_IDS.iter().find_map(|p| root.read(p).ok())
    {
        for g in &mut gpus {
            (g.vendor_name, g.device_name) = pci_names(&ids, g.vendor_id, g.device_id);
        }
    }
    Some(gpus)
}

/// Salt's GPU classes: the class code's base class and subclass.
pub fn is_display(class: u32) -> bool {
    matches!(class >> 8, 0x0300 | 0x0302 | 0x0380)
}

/// The vendor's and the device's names in `pci.ids`.
pub fn pci_names(ids: &str, vendor: u16, device: u16) -> (Option<String>, Option<String>) {
    let (vendor_hex, device_hex) = (format!("{vendor:04x}"), format!("{device:04x}"));
    let mut vendor_name = None;
    for line in ids.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            if vendor_name.is_some()
                && !rest.starts_with('\t')
                && let Some(name) = rest.strip_prefix(device_hex.as_str())
            {
                return (vendor_name, Some(name.trim().to_owned()));
            }
            continue;
        }
        if vendor_name.is_some() || line.starts_with("C ") {
            break; // past our vendor, or into the class list
        }
        if let Some(name) = line.strip_prefix(vendor_hex.as_str()) {
            vendor_name = Some(name.trim().to_owned());
        }
    }
    (vendor_name, None)
}

const KNOWN: &[&str] = &[
    "nvidia",
    "amd",
    "ati",
    "intel",
    "cirrus logic",
    "vmware",
    "matrox",
    "aspeed",
];

impl Gpu {
    /// Salt's `vendor`.
    pub fn vendor(&self) -> &'static str {
        if let Some(name) = &self.vendor_name {
            let lower = name.to_lowercase();
            let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
            return KNOWN
                .iter()
                .find(|k| match k.contains(' ') {
                    true => lower.contains(*k),
                    false => words.contains(k),
                })
                .copied()
                .unwrap_or("unknown");
        }
        match self.vendor_id {
            0x10de => "nvidia",
            0x1002 | 0x1022 => "amd",
            0x8086 => "intel",
            0x1013 => "cirrus logic",
            0x15ad => "vmware",
            0x102b => "matrox",
            0x1a03 => "aspeed",
            _ => "unknown",
        }
    }

    /// Salt's `model`: the device's name, or lspci's rendering of its id
    /// when `pci.ids` does not know it.
    pub fn model(&self) -> String {
        self.device_name
            .clone()
            .unwrap_or_else(|| format!("Device {:04x}", self.device_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::root::Tree;

    const IDS: &str = "# pci.ids\n\
        1002  Advanced Micro Devices, Inc. [AMD/ATI]\n\
        \t73bf  Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]\n\
        1013  Cirrus Logic\n\
        \t00b8  GD 5446\n\
        10de  NVIDIA Corporation\n\
        \t1eb8  TU104GL [Tesla T4]\n\
        \t\t10de 12a2  Tesla T4\n\
        1234  Technical Corp.\n\
        \t1111  QEMU Virtual Video Controller\n\
        1af4  Red Hat, Inc.\n\
        \t1050  Virtio 1.0 GPU\n\
        8086  Intel Corporation\n\
        \t3e92  CoffeeLake-S GT2 [UHD Graphics 630]\n\
        C 03  Display controller\n\
        \t00  VGA compatible controller\n";

    fn gpu(vendor_id: u16, device_id: u16, ids: Option<&str>) -> Gpu {
        let (vendor_name, device_name) = ids
            .map(|i| pci_names(i, vendor_id, device_id))
            .unwrap_or_default();
        Gpu {
            slot: "0000:00:02.0".into(),
            vendor_id,
            device_id,
            vendor_name,
            device_name,
        }
    }

    #[test]
    fn vendors_and_models_as_salt_names_them() {
        let cases = [
            (0x10de, 0x1eb8, Some(IDS), "nvidia", "TU104GL [Tesla T4]"),
            (
                0x1002,
                0x73bf,
                Some(IDS),
                "amd",
                "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]",
            ),
            (
                0x8086,
                0x3e92,
                Some(IDS),
                "intel",
                "CoffeeLake-S GT2 [UHD Graphics 630]",
            ),
            (0x1013, 0x00b8, Some(IDS), "cirrus logic", "GD 5446"),
            (
                0x1234,
                0x1111,
                Some(IDS),
                "unknown",
                "QEMU Virtual Video Controller",
            ),
            (0x1af4, 0x1050, Some(IDS), "unknown", "Virtio 1.0 GPU"),
            (0x10de, 0x2330, Some(IDS), "nvidia", "Device 2330"),
            (0x10de, 0x1eb8, None, "nvidia", "Device 1eb8"),
            (0x1002, 0x73bf, None, "amd", "Device 73bf"),
            (0x1af4, 0x1050, None, "unknown", "Device 1050"),
        ];
        for (v, d, ids, vendor, model) in cases {
            let g = gpu(v, d, ids);
            assert_eq!(
                (g.vendor(), g.model().as_str()),
                (vendor, model),
                "{v:04x}:{d:04x}"
            );
        }
    }

    #[test]
    fn display_classes() {
        assert!(is_display(0x030000));
        assert!(is_display(0x030200));
        assert!(is_display(0x038000));
        assert!(!is_display(0x030100));
        assert!(!is_display(0x020000));
        assert!(!is_display(0xffff00));
    }

    #[test]
    fn read_from_a_tree() {
        let t = Tree::new();
        let dev = |slot: &str, class: &str, vendor: &str, device: &str| {
            t.file(&format!("/sys/bus/pci/devices/{slot}/class"), class)
                .file(&format!("/sys/bus/pci/devices/{slot}/vendor"), vendor)
                .file(&format!("/sys/bus/pci/devices/{slot}/device"), device);
        };
        dev("0000:00:00.0", "0x060000\n", "0x8086\n", "0x0d57\n");
        dev("0000:00:02.0", "0x030000\n", "0x8086\n", "0x3e92\n");
        dev("0000:01:00.0", "0x030200\n", "0x10de\n", "0x1eb8\n");
        t.file("/usr/share/hwdata/pci.ids", IDS);
        let gpus = collect(&t.root()).unwrap();
        let got: Vec<(&str, String)> = gpus.iter().map(|g| (g.vendor(), g.model())).collect();
        assert_eq!(
            got,
            [
                ("intel", "CoffeeLake-S GT2 [UHD Graphics 630]".to_owned()),
                ("nvidia", "TU104GL [Tesla T4]".to_owned())
            ]
        );
        let t = Tree::new();
        t.dir("/sys/bus/pci/devices");
        assert_eq!(collect(&t.root()), Some(vec![]));
        assert_eq!(collect(&Tree::new().root()), None);
    }
}
