//! Firmware identity: `/sys/class/dmi/id/*` (SMBIOS as the kernel exports
//! it) and, on boards without SMBIOS, `/proc/device-tree` — Salt's
//! `manufacturer`, `productname`, `serialnumber`, `uuid`, `biosversion`,
//! `biosreleasedate`, `biosvendor` and `boardname`.
//!
//! `product_serial` and `product_uuid` are readable by root only: for
//! another user those grains are absent, as Salt skips them.

use super::root::Root;

/// The DMI strings grains and virtual-machine detection read; a file that
/// is unreadable or empty is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dmi {
    pub sys_vendor: Option<String>,
    pub product_name: Option<String>,
    pub product_version: Option<String>,
    pub product_serial: Option<String>,
    pub product_uuid: Option<String>,
    pub board_vendor: Option<String>,
    pub board_name: Option<String>,
    pub bios_vendor: Option<String>,
    pub bios_version: Option<String>,
    pub bios_date: Option<String>,
}

/// `/proc/device-tree`'s identity strings (ARM and POWER boards).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceTree {
    /// `manufacturer,model` or just the model.
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub system_id: Option<String>,
}

pub fn collect(root: &Root) -> Dmi {
    let f = |name: &str| root.read_value(&format!("/sys/class/dmi/id/{name}"));
    Dmi {
        sys_vendor: f("sys_vendor"),
        product_name: f("product_name"),
        product_version: f("product_version"),
        product_serial: f("product_serial"),
        product_uuid: f("product_uuid"),
        board_vendor: f("board_vendor"),
        board_name: f("board_name"),
        bios_vendor: f("bios_vendor"),
        bios_version: f("bios_version"),
        bios_date: f("bios_date"),
    }
}

pub fn collect_device_tree(root: &Root) -> DeviceTree {
    let f = |name: &str| {
        root.read(&format!("/proc/device-tree/{name}"))
            .ok()
            .map(|s| s.trim_end_matches('\0').trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    DeviceTree {
        model: f("model"),
        serial_number: f("serial-number"),
        system_id: f("system-id"),
    }
}

/// The hardware grains, Salt's name first: the device tree's values, each
/// replaced by DMI's where DMI has one (Salt reads them in that order).
pub fn hardware_grains(dmi: &Dmi, dt: &DeviceTree) -> Vec<(&'static str, String)> {
    let (mut manufacturer, mut productname) = match dt.model.as_deref().map(|m| m.split_once(',')) {
        Some(Some((maker, model))) => (Some(maker.to_owned()), Some(model.to_owned())),
        Some(None) => (None, dt.model.clone()),
        None => (None, None),
    };
    let mut serialnumber = dt.serial_number.clone().or_else(|| dt.system_id.clone());
    if dmi.sys_vendor.is_some() {
        manufacturer = dmi.sys_vendor.clone();
    }
    if dmi.product_name.is_some() {
        productname = dmi.product_name.clone();
    }
    if dmi.product_serial.is_some() {
        serialnumber = dmi.product_serial.clone();
    }
    [
        ("biosversion", dmi.bios_version.clone()),
        ("biosvendor", dmi.bios_vendor.clone()),
        ("boardname", dmi.board_name.clone()),
        ("productname", productname),
        ("manufacturer", manufacturer),
        ("biosreleasedate", dmi.bios_date.clone()),
        ("uuid", dmi.product_uuid.as_ref().map(|u| u.to_lowercase())),
        ("serialnumber", serialnumber),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::root::Tree;

    #[test]
    fn dmi_files_trimmed_and_absent_when_unreadable_or_empty() {
        let t = Tree::new();
        t.file("/sys/class/dmi/id/sys_vendor", "Dell Inc.\n")
            .file("/sys/class/dmi/id/product_name", "PowerEdge R640\n")
            .file(
                "/sys/class/dmi/id/product_uuid",
                "4C4C4544-0042-3510-8057-B7C04F4E4B32\n",
            )
            .file("/sys/class/dmi/id/bios_version", "2.19.1\n")
            .file("/sys/class/dmi/id/bios_date", "06/13/2023\n")
            .file("/sys/class/dmi/id/board_name", "\n");
        let d = collect(&t.root());
        assert_eq!(d.sys_vendor.as_deref(), Some("Dell Inc."));
        assert_eq!(d.board_name, None);
        assert_eq!(d.product_serial, None);
        let g = hardware_grains(&d, &DeviceTree::default());
        assert_eq!(
            g,
            [
                ("biosversion", "2.19.1".to_owned()),
                ("productname", "PowerEdge R640".to_owned()),
                ("manufacturer", "Dell Inc.".to_owned()),
                ("biosreleasedate", "06/13/2023".to_owned()),
                ("uuid", "4c4c4544-0042-3510-8057-b7c04f4e4b32".to_owned()),
            ]
        );
    }

    #[test]
    fn a_device_tree_board_and_dmi_winning_over_it() {
        let t = Tree::new();
        t.file(
            "/proc/device-tree/model",
            "raspberrypi,Raspberry Pi 4 Model B Rev 1.4\0",
        )
        .file("/proc/device-tree/serial-number", "10000000abcdef01\0");
        let dt = collect_device_tree(&t.root());
        let g = hardware_grains(&Dmi::default(), &dt);
        assert_eq!(
            g,
            [
                ("productname", "Raspberry Pi 4 Model B Rev 1.4".to_owned()),
                ("manufacturer", "raspberrypi".to_owned()),
                ("serialnumber", "10000000abcdef01".to_owned()),
            ]
        );
        let dmi = Dmi {
            sys_vendor: Some("QEMU".into()),
            ..Dmi::default()
        };
        assert!(hardware_grains(&dmi, &dt).contains(&("manufacturer", "QEMU".to_owned())));
        let dt = DeviceTree {
            model: Some("IBM,9009-42A".into()),
            system_id: Some("IBM,0278ABCDE".into()),
            ..DeviceTree::default()
        };
        assert!(
            hardware_grains(&Dmi::default(), &dt)
                .contains(&("serialnumber", "IBM,0278ABCDE".to_owned()))
        );
        let dt = DeviceTree {
            model: Some("Generic board".into()),
            ..DeviceTree::default()
        };
        assert_eq!(
            hardware_grains(&Dmi::default(), &dt),
            [("productname", "Generic board".to_owned())]
        );
    }
}
