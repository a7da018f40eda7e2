//! Reading a plan file: CSV (one row per item, a `kind` column) or YAML (sections).
//! Both become the same rows, each with where it was, so every conflict names its
//! line. A bad row is a conflict, never the end of the reading: every row is read.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AddressDecl, Conflict, Entry, Item, Loc, SiteDecl, SubnetDecl, ZoneDecl};
use crate::ipam::{Addr, Family, Prefix};
use crate::slug::{self, SlugRule};

/// The CSV columns, in the order the sample writes them.
pub const COLUMNS: [&str; 12] = ["kind", "name", "site", "zone", "department", "ipv4", "ipv6", "vlan", "subnet_ipv4", "subnet_ipv6", "role", "description"];

/// One row before its cells are checked: the item's kind and its non-empty cells.
#[derive(Clone, Debug, Default)]
struct Row {
    at: Loc,
    kind: String,
    cells: BTreeMap<&'static str, String>,
}

/// What a file held: the items that read well and a conflict for each that did not.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub conflicts: Vec<Conflict>,
}

/// Split one CSV line into cells (RFC 4180 quoting within the line).
fn csv_cells(line: &str) -> Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (',', false) => cells.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted cell is not closed on this line (cells cannot span lines)".into());
    }
    cells.push(cur.trim().to_string());
    Ok(cells)
}

/// Read a CSV plan: `#` lines and blank lines are skipped; the first other line is
/// the header (the columns of [`COLUMNS`], any order, `kind` required).
pub fn csv(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut header: Option<Vec<Option<&'static str>>> = None;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = Loc::line(i + 1);
        let trimmed = line.trim_start_matches('\u{feff}').trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let cells = match csv_cells(trimmed) {
            Ok(c) => c,
            Err(e) => {
                out.conflicts.push(Conflict::new(at, e, "close the quote, or write the cell without line breaks"));
                continue;
            }
        };
        let Some(cols) = &header else {
            header = Some(read_header(&cells, at, &mut out.conflicts));
            continue;
        };
        if cells.len() > cols.len() {
            let msg = format!("{} cells, but the header has {} columns", cells.len(), cols.len());
            out.conflicts.push(Conflict::new(at, msg, "quote cells that hold a comma, e.g. \"Sở Y tế, tầng 2\""));
            continue;
        }
        let mut row = Row { at, ..Row::default() };
        for (col, cell) in cols.iter().zip(cells) {
            match col {
                Some("kind") => row.kind = cell.to_lowercase(),
                Some(c) if !cell.is_empty() => {
                    row.cells.insert(c, cell);
                }
                _ => {}
            }
        }
        rows.push(row);
    }
    if header.is_none() {
        out.conflicts.push(Conflict::new(Loc::line(1), "the file has no header line".into(), format!("start with the header {}", COLUMNS.join(","))));
    }
    for row in rows {
        read_row(row, &mut out);
    }
    out
}

fn read_header(cells: &[String], at: Loc, conflicts: &mut Vec<Conflict>) -> Vec<Option<&'static str>> {
    let cols: Vec<Option<&'static str>> = cells
        .iter()
        .map(|c| {
            let c = c.to_lowercase().replace([' ', '-'], "_");
            let c = if c == "hostname" { "name".to_string() } else { c };
            COLUMNS.iter().copied().find(|k| *k == c)
        })
        .collect();
    for (c, col) in cells.iter().zip(&cols) {
        if col.is_none() {
            conflicts.push(Conflict::new(at.clone(), format!("unknown column {c:?}"), format!("the columns are {}", COLUMNS.join(","))));
        }
    }
    if !cols.contains(&Some("kind")) {
        conflicts.push(Conflict::new(at, "the header has no kind column".into(), format!("use the header {}", COLUMNS.join(","))));
    }
    cols
}

/// A plan in YAML: the same items in four sections.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct YamlPlan {
    #[serde(default)]
    pub sites: Vec<YamlSite>,
    #[serde(default)]
    pub zones: Vec<YamlZone>,
    #[serde(default)]
    pub subnets: Vec<YamlSubnet>,
    #[serde(default)]
    pub addresses: Vec<YamlAddress>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct YamlSite {
    pub name: Option<String>,
    pub role: Option<String>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub ipv4_blocks: Vec<String>,
    #[serde(default)]
    pub ipv6_blocks: Vec<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct YamlZone {
    pub name: Option<String>,
    pub vlan: Option<i64>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub externally_assigned: bool,
    pub subnet_sizes: Option<YamlSizes>,
    #[serde(default)]
    pub sites: Vec<YamlZoneSite>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct YamlSizes {
    pub ipv4: Option<i64>,
    pub ipv6: Option<i64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct YamlZoneSite {
    pub site: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct YamlSubnet {
    pub department: Option<String>,
    pub zone: Option<String>,
    pub site: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct YamlAddress {
    pub hostname: Option<String>,
    pub zone: Option<String>,
    pub site: Option<String>,
    pub department: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub role: Option<String>,
    pub description: Option<String>,
}

/// The lines where a top-level section's list items start (block style), in order.
/// Empty when the section is written in flow style: entries are then named by index.
pub fn item_lines(text: &str, section: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let col = line.len() - body.len();
        if col == 0 && !body.starts_with('-') {
            inside = body.strip_prefix(section).is_some_and(|r| r.trim_start().starts_with(':'));
            continue;
        }
        if inside && (body.starts_with("- ") || body == "-") && indent.is_none_or(|n| n == col) {
            indent = Some(col);
            out.push(i + 1);
        }
    }
    out
}

fn put(cells: &mut BTreeMap<&'static str, String>, key: &'static str, v: Option<String>) {
    if let Some(v) = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        cells.insert(key, v);
    }
}

/// Read a YAML plan already deserialized, with its text for the line numbers.
pub fn yaml(doc: YamlPlan, text: &str) -> Parsed {
    let at = |section: &'static str, lines: &[usize], i: usize| Loc { line: lines.get(i).copied(), entry: Some((section, i)) };
    let mut rows = Vec::new();
    let lines = item_lines(text, "sites");
    for (i, s) in doc.sites.into_iter().enumerate() {
        let mut r = Row { at: at("sites", &lines, i), kind: "site".into(), cells: BTreeMap::new() };
        put(&mut r.cells, "name", s.name);
        put(&mut r.cells, "role", s.role);
        put(&mut r.cells, "description", s.display_name);
        put(&mut r.cells, "ipv4", Some(s.ipv4_blocks.join(" ")));
        put(&mut r.cells, "ipv6", Some(s.ipv6_blocks.join(" ")));
        rows.push(r);
    }
    let lines = item_lines(text, "zones");
    for (i, z) in doc.zones.into_iter().enumerate() {
        let mut base = Row { at: at("zones", &lines, i), kind: "zone".into(), cells: BTreeMap::new() };
        put(&mut base.cells, "name", z.name);
        put(&mut base.cells, "vlan", z.vlan.map(|v| v.to_string()));
        put(&mut base.cells, "description", z.display_name);
        put(&mut base.cells, "role", z.externally_assigned.then(|| "external".to_string()));
        let sizes = z.subnet_sizes.unwrap_or_default();
        put(&mut base.cells, "subnet_ipv4", sizes.ipv4.map(|v| v.to_string()));
        put(&mut base.cells, "subnet_ipv6", sizes.ipv6.map(|v| v.to_string()));
        if z.sites.is_empty() {
            rows.push(base.clone());
        }
        for s in z.sites {
            let mut r = base.clone();
            put(&mut r.cells, "site", s.site);
            put(&mut r.cells, "ipv4", s.ipv4);
            put(&mut r.cells, "ipv6", s.ipv6);
            rows.push(r);
        }
    }
    let lines = item_lines(text, "subnets");
    for (i, s) in doc.subnets.into_iter().enumerate() {
        let mut r = Row { at: at("subnets", &lines, i), kind: "subnet".into(), cells: BTreeMap::new() };
        for (k, v) in [("department", s.department), ("zone", s.zone), ("site", s.site), ("ipv4", s.ipv4), ("ipv6", s.ipv6)] {
            put(&mut r.cells, k, v);
        }
        rows.push(r);
    }
    let lines = item_lines(text, "addresses");
    for (i, a) in doc.addresses.into_iter().enumerate() {
        let mut r = Row { at: at("addresses", &lines, i), kind: "address".into(), cells: BTreeMap::new() };
        let cells = [("name", a.hostname), ("zone", a.zone), ("site", a.site), ("department", a.department), ("ipv4", a.ipv4), ("ipv6", a.ipv6), ("role", a.role), ("description", a.description)];
        for (k, v) in cells {
            put(&mut r.cells, k, v);
        }
        rows.push(r);
    }
    let mut out = Parsed::default();
    for r in rows {
        read_row(r, &mut out);
    }
    out
}

/// Checks one row's cells and turns it into an item, or records why it cannot be one.
struct Cells<'a> {
    row: &'a Row,
    conflicts: Vec<Conflict>,
}

impl Cells<'_> {
    fn bad(&mut self, problem: String, fix: impl Into<String>) {
        self.conflicts.push(Conflict::new(self.row.at.clone(), problem, fix.into()));
    }

    fn get(&self, col: &str) -> Option<String> {
        self.row.cells.get(col).cloned()
    }

    /// A name that must be a DNS label (sites, zones, departments).
    fn label(&mut self, col: &'static str, what: &str) -> Option<String> {
        let Some(v) = self.get(col) else {
            self.bad(format!("the {col} column is empty; a {} row needs the {what}", self.row.kind), format!("write the {what} in the {col} column"));
            return None;
        };
        if slug::is_dns_label(&v) {
            return Some(v);
        }
        let hint = slug::slug(&v, SlugRule::default()).map(|s| format!("write {}", s.label)).unwrap_or_else(|_| "use lowercase letters, digits and '-'".into());
        self.bad(format!("{col} {v:?} is not a {what}'s name (a DNS label: lowercase letters, digits, '-')"), hint);
        None
    }

    fn prefix(&mut self, col: &'static str, family: Family) -> Option<Prefix> {
        let v = self.get(col)?;
        match Prefix::parse(&v) {
            Ok(p) if p.family == family => Some(p),
            Ok(p) => {
                self.bad(format!("{col} {v} is an {} prefix", p.family), format!("put it in the {} column", if family == Family::V4 { "ipv6" } else { "ipv4" }));
                None
            }
            Err(e) => {
                let fix = masked_hint(&v).unwrap_or_else(|| format!("write an {family} prefix in CIDR notation"));
                self.bad(format!("{col}: {e}"), fix);
                None
            }
        }
    }

    fn blocks(&mut self, col: &'static str, family: Family) -> Vec<Prefix> {
        let Some(v) = self.get(col) else { return Vec::new() };
        let mut out = Vec::new();
        for text in v.split([' ', ';']).filter(|t| !t.is_empty()) {
            match Prefix::parse(text) {
                Ok(p) if p.family == family => out.push(p),
                Ok(_) | Err(_) => self.bad(format!("{col}: {text} is not an {family} block"), format!("write {family} blocks in CIDR notation, separated by spaces")),
            }
        }
        out
    }

    fn addr(&mut self, col: &'static str, family: Family) -> Option<Addr> {
        let v = self.get(col)?;
        match Addr::parse(&v) {
            Ok(a) if a.family == family => Some(a),
            Ok(a) => {
                self.bad(format!("{col} {v} is an {} address", a.family), format!("put it in the {} column", if family == Family::V4 { "ipv6" } else { "ipv4" }));
                None
            }
            Err(e) => {
                self.bad(format!("{col}: {e}"), format!("write one {family} address without a prefix length"));
                None
            }
        }
    }

    fn number(&mut self, col: &'static str, lo: u16, hi: u16) -> Option<u16> {
        let v = self.get(col)?;
        match v.trim_start_matches('/').parse::<u16>() {
            Ok(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                self.bad(format!("{col} {v:?} is not a number from {lo} to {hi}"), format!("write a number from {lo} to {hi}"));
                None
            }
        }
    }
}

/// `10.15.1.5/24` → "write 10.15.1.0/24" (host bits set is the usual slip).
fn masked_hint(text: &str) -> Option<String> {
    let (addr, len) = text.split_once('/')?;
    let a = Addr::parse(addr).ok()?;
    let len: u8 = len.parse().ok()?;
    if len > a.family.bits() {
        return None;
    }
    let p = Prefix { family: a.family, network: 0, len };
    let masked = Prefix { family: a.family, network: a.value & !p.host_mask(), len };
    Some(format!("write {masked} (the host bits must be zero)"))
}

fn read_row(row: Row, out: &mut Parsed) {
    let mut c = Cells { row: &row, conflicts: Vec::new() };
    let item = match row.kind.as_str() {
        "site" => site(&mut c).map(Item::Site),
        "zone" => zone(&mut c).map(Item::Zone),
        "subnet" => subnet(&mut c).map(Item::Subnet),
        "address" => address(&mut c).map(Item::Address),
        "" => {
            c.bad("the kind column is empty".into(), "write site, zone, subnet or address");
            None
        }
        other => {
            c.bad(format!("unknown kind {other:?}"), "write site, zone, subnet or address");
            None
        }
    };
    let conflicts = c.conflicts;
    match item {
        Some(item) if conflicts.is_empty() => out.entries.push(Entry { at: row.at, item }),
        _ => out.conflicts.extend(conflicts),
    }
}

fn site(c: &mut Cells) -> Option<SiteDecl> {
    let name = c.label("name", "site");
    let primary = match c.get("role").map(|r| r.to_lowercase()).as_deref() {
        Some("primary") | None => true,
        Some("standby") => false,
        Some(other) => {
            c.bad(format!("site role {other:?} is neither Primary nor Standby"), "write Primary or Standby");
            true
        }
    };
    let (ipv4_blocks, ipv6_blocks) = (c.blocks("ipv4", Family::V4), c.blocks("ipv6", Family::V6));
    Some(SiteDecl { name: name?, primary, display_name: c.get("description"), ipv4_blocks, ipv6_blocks })
}

fn zone(c: &mut Cells) -> Option<ZoneDecl> {
    let (name, site) = (c.label("name", "zone"), c.label("site", "site"));
    let (ipv4, ipv6) = (c.prefix("ipv4", Family::V4), c.prefix("ipv6", Family::V6));
    if c.get("ipv4").is_none() && c.get("ipv6").is_none() {
        c.bad("a zone row needs its prefix at the site in ipv4, ipv6 or both".into(), "write the zone's declared prefixes");
    }
    let externally_assigned = match c.get("role").map(|r| r.to_lowercase()).as_deref() {
        None | Some("pdc") => false,
        Some("external") => true,
        Some(other) => {
            c.bad(format!("zone role {other:?} is neither pdc nor external"), "write external for a zone planned outside pdc (TSLCD), or leave it empty");
            false
        }
    };
    let vlan = c.number("vlan", 1, 4094);
    let size_v4 = c.number("subnet_ipv4", 16, 30).and_then(|n| u8::try_from(n).ok());
    let size_v6 = c.number("subnet_ipv6", 48, 120).and_then(|n| u8::try_from(n).ok());
    Some(ZoneDecl { name: name?, site: site?, ipv4, ipv6, vlan, size_v4, size_v6, display_name: c.get("description"), externally_assigned })
}

fn subnet(c: &mut Cells) -> Option<SubnetDecl> {
    let (department, zone, site) = (c.label("department", "Department"), c.label("zone", "zone"), c.label("site", "site"));
    let (ipv4, ipv6) = (c.prefix("ipv4", Family::V4), c.prefix("ipv6", Family::V6));
    if c.get("ipv4").is_none() && c.get("ipv6").is_none() {
        c.bad("a subnet row needs its prefix in ipv4, ipv6 or both".into(), "write the department's declared subnet");
    }
    Some(SubnetDecl { department: department?, zone: zone?, site: site?, ipv4, ipv6 })
}

fn address(c: &mut Cells) -> Option<AddressDecl> {
    let (zone, site) = (c.label("zone", "zone"), c.label("site", "site"));
    let department = match c.get("department").as_deref() {
        None | Some("-" | "none") => None,
        Some(_) => c.label("department", "Department"),
    };
    let (ipv4, ipv6) = (c.addr("ipv4", Family::V4), c.addr("ipv6", Family::V6));
    if c.get("ipv4").is_none() && c.get("ipv6").is_none() {
        c.bad("an address row needs an address in ipv4, ipv6 or both".into(), "write the address in use");
    }
    let hostname = c.get("name").map(|h| h.to_lowercase());
    if let Some(h) = &hostname
        && !(h.len() <= 253 && h.trim_end_matches('.').split('.').all(slug::is_dns_label))
    {
        let hint = slug::slug(h, SlugRule::default()).map(|s| format!("write {}", s.label)).unwrap_or_else(|_| "use lowercase letters, digits, '-' and '.'".into());
        c.bad(format!("hostname {h:?} is not a DNS name"), hint);
    }
    let role = c.get("role").map(|r| r.to_lowercase());
    if role.is_none() {
        c.bad("the role column is empty: say what holds the address".into(), "write server, network-point, gateway, firewall, switch, …");
    }
    Some(AddressDecl { hostname, zone: zone?, site: site?, department, ipv4, ipv6, role: role?, description: c.get("description") })
}
