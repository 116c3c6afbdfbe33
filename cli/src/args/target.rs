//! The target flags: Salt's (`-E -L -G -P -I -F -S -R -N -C`, at most one)
//! and `--delimiter` for the `key:value` kinds.

use clap::Args as ClapArgs;

/// How the target is read (Salt's flags); without one, targets are node
/// names or globs on them.
#[derive(ClapArgs, Debug, Default, Clone)]
pub struct TargetFlags {
    #[command(flatten)]
    pub kind: KindFlags,
    /// With -G, -P, -I or -F: this character between keys and the value
    /// instead of ':' (e.g. `-G --delimiter % 'ipv6%fe80::*'`; in -C, write
    /// it after the prefix: `G%@ipv6%fe80::*`).
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter)]
    pub delimiter: Option<cluster_model::targets::Delimiter>,
}

/// Which of Salt's flags, at most one.
#[derive(ClapArgs, Debug, Default, Clone)]
#[group(multiple = false)]
pub struct KindFlags {
    /// Regular expression on node names (anchored at the start).
    #[arg(short = 'E', long = "pcre")]
    pub pcre: bool,
    /// Comma-separated list of node names.
    #[arg(short = 'L', long = "list")]
    pub list: bool,
    /// Grain KEY:VALUE (nested keys with ':', each may be a glob; value a
    /// glob, any list item; a dict by its keys).
    #[arg(short = 'G', long = "grain")]
    pub grain: bool,
    /// Grain KEY:REGEX.
    #[arg(short = 'P', long = "grain-pcre")]
    pub grain_pcre: bool,
    /// Label KEY:VALUE (set with `clusterctl label`).
    #[arg(short = 'I', long = "label")]
    pub label: bool,
    /// Facter fact PATH:VALUE, the path dotted (os.release.major:12), the
    /// value a glob.
    #[arg(short = 'F', long = "fact")]
    pub fact: bool,
    /// IP address or CIDR.
    #[arg(short = 'S', long = "ipcidr")]
    pub ipcidr: bool,
    /// Role (a glob).
    #[arg(short = 'R', long = "role")]
    pub role: bool,
    /// Node group defined on the master.
    #[arg(short = 'N', long = "nodegroup")]
    pub nodegroup: bool,
    /// Compound: G@ E@ P@ L@ I@ F@ S@ R@ N@ with and/or/not and parentheses;
    /// G%@key%value (P, I, F too) uses '%' as the delimiter, F@ takes a
    /// dotted fact path (F@os.family:Debian).
    #[arg(short = 'C', long = "compound")]
    pub compound: bool,
}

/// What the target flags say about how to read the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HowKind {
    Names,
    Kind(cluster_model::targets::Kind),
}

fn parse_delimiter(s: &str) -> Result<cluster_model::targets::Delimiter, String> {
    s.parse().map_err(|e| format!("{e}"))
}

impl TargetFlags {
    pub fn kind(&self) -> HowKind {
        use cluster_model::targets::Kind;
        let k = &self.kind;
        let pairs = [
            (k.pcre, Kind::Regex),
            (k.list, Kind::List),
            (k.grain, Kind::Grain),
            (k.grain_pcre, Kind::GrainRegex),
            (k.label, Kind::Label),
            (k.fact, Kind::Fact),
            (k.ipcidr, Kind::Subnet),
            (k.role, Kind::Role),
            (k.nodegroup, Kind::NodeGroup),
            (k.compound, Kind::Compound),
        ];
        pairs
            .iter()
            .find(|(on, _)| *on)
            .map_or(HowKind::Names, |(_, k)| HowKind::Kind(*k))
    }
}
